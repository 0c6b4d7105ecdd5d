#!/usr/bin/env node
// Builds native/core with CMake alone (no Node headers) and runs the C++ kernel tests with ctest,
// once with OpenBLAS (when installed) and once with the built-in GEMM, so both paths stay correct.
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
    '-DCMAKE_BUILD_TYPE=Release',
  ]);
  run('cmake', ['--build', dir, '-j', jobs]);
  run('ctest', ['--test-dir', dir, '--output-on-failure']);
}
