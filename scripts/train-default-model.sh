#!/usr/bin/env bash
# Trains the default model shipped in models/default.safetensors: a one-layer LSTM (hidden 512,
# embedding 64, dropout 0.25 on its input and output) on the bundled Shakespeare corpus, saved
# without optimizer state to stay small.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/cli.js train --cell lstm --hidden 512 --embedding 64 --layers 1 \
  --dropout 0.25 --seq-length 100 --batch-size 32 --lr 3e-3 --lr-schedule cosine --epochs 6 --seed 1 \
  --validate-every 200 --weights-only --out models/default.safetensors "$@"
