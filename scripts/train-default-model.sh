#!/usr/bin/env bash
# Trains the default model shipped in models/default.safetensors: a one-layer LSTM (hidden 512,
# embedding 64, dropout 0.25 on its input and output) on the bundled Shakespeare corpus, saved
# without optimizer state to stay small. The second stage fine-tunes it with frequent zero-state
# windows so that prompts given from a cold start (as `generate` does) stay on track.
# `--stage 2` runs only the fine-tuning of an existing models/default.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
out=models/default.safetensors
if [ "${1:-}" != "--stage" ] || [ "${2:-}" != "2" ]; then
  node dist/cli.js train --cell lstm --hidden 512 --embedding 64 --layers 1 \
    --dropout 0.25 --seq-length 100 --batch-size 32 --lr 3e-3 --lr-schedule cosine --epochs 6 \
    --seed 1 --validate-every 200 --weights-only --sample 0 --out "$out"
fi
node dist/cli.js train --init "$out" --steps 300 --lr 5e-4 --lr-schedule constant \
  --state-reset 0.3 --seq-length 100 --batch-size 32 --seed 2 --validate-every 100 \
  --weights-only --out "$out"
