#!/usr/bin/env node
// Builds native/core with CMake alone (no Node headers) and runs the C++ kernel tests with ctest,
// once with OpenBLAS (when installed) and once with the built-in GEMM, so both paths stay correct.
// The first pass also builds the CUDA kernels and their tests when nvcc is found (they report
// skipped without a GPU).
//
// --sanitize runs one other build instead: the kernel tests under AddressSanitizer (with
// LeakSanitizer) and UndefinedBehaviorSanitizer (RNNKIT_SANITIZE=ON), built-in GEMM, no CUDA, in
// build/native-tests-sanitize; any report fails the run.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
const sanitize = process.argv.includes('--sanitize');

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`rnnkit: '${cmd} ${args.join(' ')}' failed`);
    process.exit(r.status ?? 1);
  }
}

function pass(dir, options, env) {
  console.log(`\n== C++ kernel tests, ${options.join(' ')} (${dir})`);
  run('cmake', ['-S', '.', '-B', dir, '-DRNNKIT_TESTS=ON', ...options]);
  run('cmake', ['--build', dir, '-j', jobs]);
  run('ctest', ['--test-dir', dir, '--output-on-failure'], env);
}

if (sanitize) {
  pass(
    path.join('build', 'native-tests-sanitize'),
    [
      '-DRNNKIT_SANITIZE=ON',
      '-DRNNKIT_BLAS=off',
      '-DRNNKIT_CUDA=off',
      '-DCMAKE_BUILD_TYPE=RelWithDebInfo',
    ],
    {
      ...process.env,
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:strict_string_checks=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    },
  );
} else {
  for (const blas of ['auto', 'off'])
    pass(path.join('build', `native-tests-${blas === 'off' ? 'builtin' : 'blas'}`), [
      `-DRNNKIT_BLAS=${blas}`,
      // The CUDA kernels do not depend on the CPU GEMM: compile them (and, on a GPU, test them)
      // in the first pass only, where nvcc is found.
      `-DRNNKIT_CUDA=${blas === 'off' ? 'off' : 'auto'}`,
      '-DCMAKE_BUILD_TYPE=Release',
    ]);
}
