#!/usr/bin/env bash
# The GPU check of the CUDA build, for a GPU host with CUDA, CMake and PyTorch but no Node:
#   1. configures and builds native/core with the CUDA kernels and the C++ tests;
#   2. runs every C++ test with ctest: the CPU kernel tests and the CPU-vs-CUDA parity tests,
#      which must run here, not skip;
#   3. times BENCH.md's LSTM/GRU train M and generate workloads on rnnkit's CUDA kernels
#      (native/tests/bench_cuda.cpp) and on PyTorch/cuDNN on the same GPU, and prints a table.
# Usage: scripts/gpu-check.sh [build-dir]      (default: build/gpu-check)
# CUDA_ARCHITECTURES overrides the architectures compiled for (CMake's default here is "80;90").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/gpu-check}"
arch=()
[ -n "${CUDA_ARCHITECTURES:-}" ] && arch=("-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHITECTURES")

echo "== configure and build ($build)"
cmake -S "$root" -B "$build" -DRNNKIT_TESTS=ON -DRNNKIT_CUDA=on -DCMAKE_BUILD_TYPE=Release ${arch[@]+"${arch[@]}"} >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

echo "== C++ tests"
status=0
ctest --test-dir "$build" --output-on-failure 2>&1 | tee "$build/ctest.log" || status=$?
if grep -q "(Skipped)" "$build/ctest.log"; then
  echo "gpu-check: the CUDA tests skipped: this host has no usable CUDA device" >&2
  exit 1
fi

echo "== benchmark: rnnkit CUDA beside PyTorch/cuDNN"
"$build/bench_cuda" | tee "$build/bench_cuda.tsv"
python3 "$root/scripts/gpu-bench-torch.py" "$build/bench_cuda.tsv"

if [ "$status" -ne 0 ]; then
  echo "gpu-check: some C++ tests failed (see above)" >&2
fi
exit "$status"
