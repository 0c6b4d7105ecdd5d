#!/usr/bin/env node
// Builds native/core with CMake alone (no Node headers) and runs the C++ kernel tests with ctest,
// once with OpenBLAS (when installed) and once with the built-in GEMM, so both paths stay correct.
// The first pass also builds the CUDA kernels and their tests when nvcc is found (they report
// skipped without a GPU).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`rnnkit: '${cmd} ${args.join(' ')}' failed`);
    process.exit(r.status ?? 1);
  }
}

for (const blas of ['auto', 'off']) {
  const dir = path.join('build', `native-tests-${blas === 'off' ? 'builtin' : 'blas'}`);
  console.log(`\n== C++ kernel tests, RNNKIT_BLAS=${blas} (${dir})`);
  run('cmake', [
    '-S',
    '.',
    '-B',
    dir,
    '-DRNNKIT_TESTS=ON',
    `-DRNNKIT_BLAS=${blas}`,
    // The CUDA kernels do not depend on the CPU GEMM: compile them (and, on a GPU, test them)
    // in the first pass only, where nvcc is found.
    `-DRNNKIT_CUDA=${blas === 'off' ? 'off' : 'auto'}`,
    '-DCMAKE_BUILD_TYPE=Release',
  ]);
  run('cmake', ['--build', dir, '-j', jobs]);
  run('ctest', ['--test-dir', dir, '--output-on-failure']);
}
