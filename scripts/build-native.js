#!/usr/bin/env node
// Builds the addon from source, offline: cmake-js when CMake is on the PATH, node-gyp (which npm
// carries) otherwise. Both read native/sources.json and build one addon per instruction-set
// variant (build/Release/rnnkit-<isa>.node; the loader picks the best this CPU runs). Options:
//   --native       one build for this machine's CPU (-march=native), instead of the variants;
//                  also RNNKIT_MARCH_NATIVE=1 (cmake-js only)
//   --debug        debug build with AddressSanitizer/UBSan (cmake-js only)
//   --gyp          force the node-gyp build
//   --cuda         also compile the CUDA kernels into the addon (needs nvcc; cmake-js only). The
//                  environment variable RNNKIT_CUDA=on|auto does the same for `npm install`.
//                  Off by default, so that a broken or mismatched CUDA toolkit can never fail an
//                  install that does not ask for it.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const debug = args.includes('--debug');
const nativeArch = args.includes('--native') || process.env.RNNKIT_MARCH_NATIVE === '1';
const cuda = args.includes('--cuda') ? 'on' : (process.env.RNNKIT_CUDA ?? 'off');
if (!['on', 'off', 'auto'].includes(cuda)) {
  console.error(`rnnkit: RNNKIT_CUDA must be on, off or auto, got '${cuda}'`);
  process.exit(1);
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (r.error) return { ok: false, missing: r.error.code === 'ENOENT' };
  return { ok: r.status === 0, missing: false };
}

function have(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

let result;
if (!args.includes('--gyp') && have('cmake')) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const flags = [
    '--CDRNNKIT_ISA=' + (nativeArch ? 'native' : 'dispatch'),
    '--CDRNNKIT_CUDA=' + cuda,
  ];
  if (debug) flags.push('--debug', '--CDRNNKIT_SANITIZE=ON');
  // Configure every time: `cmake-js compile` skips configuring an already configured build
  // directory, and with it these options, so a cached RNNKIT_CUDA would outlive the flag.
  result = run(process.execPath, [cmakeJs, 'configure', ...flags]);
  if (result.ok) result = run(process.execPath, [cmakeJs, 'build', ...(debug ? ['--debug'] : [])]);
} else {
  if (debug || nativeArch || cuda !== 'off')
    console.warn('rnnkit: --debug, --native and --cuda apply to the CMake build only');
  console.log('rnnkit: building the addon with node-gyp');
  const gyp = process.env.npm_config_node_gyp;
  result = gyp ? run(process.execPath, [gyp, 'rebuild']) : run('node-gyp', ['rebuild']);
}
if (!result.ok) {
  const missing = ['cmake', 'c++', 'make', 'python3'].filter((c) => !have(c));
  console.error(
    'rnnkit: building the native addon from source failed. It needs a C++17 compiler and CMake ' +
      '(or make and python3 for node-gyp)' +
      (missing.length ? `; not found on the PATH: ${missing.join(', ')}` : '') +
      '. On Debian/Ubuntu: apt-get install -y cmake g++ (and libopenblas0 for speed); ' +
      'see "Install" in README.md.',
  );
  process.exit(1);
}
