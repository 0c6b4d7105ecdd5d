#!/usr/bin/env node
// Builds native/core with CMake alone (no Node headers), once per instruction-set variant, and runs
// the C++ kernel tests with ctest for every variant this CPU runs (native/tests/cpu_main.cpp says
// which), each once with OpenBLAS (where installed) and once with the built-in GEMM alone
// (RNNKIT_BLAS=off), so that every path stays correct. The build also compiles the CUDA kernels and
// their tests when nvcc is found (they report skipped without a GPU).
//   --build-dir DIR   build there (default build/native-tests)
//   --sanitize        instead: the kernel tests under AddressSanitizer (with LeakSanitizer) and
//                     UndefinedBehaviorSanitizer, baseline kernels and built-in GEMM, no CUDA, in
//                     build/native-tests-sanitize; any report fails the run
//   --tsan            instead: the kernel tests under ThreadSanitizer (the helper threads of the
//                     built-in GEMM and parallel_for), baseline kernels, no CUDA, in
//                     build/native-tests-tsan; any report fails the run
//   --cmake ARGS...   extra configure arguments (a toolchain file for a cross build, ...)
//   --runner CMD      run the probe and tests through CMD (e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu")
//   --blas MODES      the RNNKIT_BLAS settings to run the tests under (default "auto,off")
//   --tests REGEX     only the tests whose names match (ctest -R), e.g. qgemm
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const sanitizer = args.includes('--tsan') ? 'thread' : args.includes('--sanitize') ? 'ON' : null;
const sanitize = sanitizer !== null;
const dir =
  option('--build-dir') ??
  path.join(
    'build',
    { thread: 'native-tests-tsan', ON: 'native-tests-sanitize' }[sanitizer] ?? 'native-tests',
  );
const cmakeExtra = args.includes('--cmake') ? args.slice(args.indexOf('--cmake') + 1) : [];
const runner = option('--runner');
const blasModes = (option('--blas') ?? (sanitize ? 'off' : 'auto,off')).split(',');
const only = option('--tests');

function run(cmd, argv, env = {}) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) {
    console.error(`rnnkit: '${cmd} ${argv.join(' ')}' failed`);
    process.exit(r.status ?? 1);
  }
}

run('cmake', [
  '-S',
  '.',
  '-B',
  dir,
  '-DRNNKIT_TESTS=ON',
  `-DCMAKE_BUILD_TYPE=${sanitize ? 'RelWithDebInfo' : 'Release'}`,
  ...(sanitize
    ? [`-DRNNKIT_SANITIZE=${sanitizer}`, '-DRNNKIT_ISAS=baseline', '-DRNNKIT_CUDA=off']
    : ['-DRNNKIT_SANITIZE=OFF', '-DRNNKIT_ISAS=']),
  ...(runner ? [`-DCMAKE_CROSSCOMPILING_EMULATOR=${runner.split(' ').join(';')}`] : []),
  ...cmakeExtra,
]);
run('cmake', ['--build', dir, '-j', jobs]);

const probe = path.join(dir, 'rnnkit_cpu');
const [cmd, ...pre] = runner ? [...runner.split(' '), probe] : [probe];
const found = spawnSync(cmd, pre, { cwd: root, encoding: 'utf8' });
if (found.status !== 0) {
  console.error(`rnnkit: ${probe} failed: ${found.stderr}`);
  process.exit(1);
}
// The sanitizer build has the baseline kernels only.
const variants = found.stdout.split('\n').filter((isa) => isa && (!sanitize || isa === 'baseline'));
for (const isa of variants) {
  for (const blas of blasModes) {
    console.log(`\n== C++ kernel tests, ${isa} kernels, RNNKIT_BLAS=${blas}`);
    const select = ['-L', `^${isa}$`, ...(only ? ['-R', only] : [])];
    run('ctest', ['--test-dir', dir, ...select, '--output-on-failure'], {
      RNNKIT_BLAS: blas,
      ...(sanitize && {
        ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:strict_string_checks=1',
        UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
        TSAN_OPTIONS: 'halt_on_error=1:second_deadlock_stack=1',
      }),
    });
  }
}
