#!/usr/bin/env node
// Builds the addon on `npm install`, offline: cmake-js when CMake is on the PATH, node-gyp (which
// npm carries) otherwise. Both read native/sources.json. Options:
//   --debug        debug build with AddressSanitizer/UBSan (cmake-js only)
//   --gyp          force the node-gyp build
//   --blas=off     build with the built-in GEMM even when OpenBLAS is installed (cmake-js only)
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const debug = args.includes('--debug');
const blas = (args.find((a) => a.startsWith('--blas=')) ?? '--blas=auto').slice(7);

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  });
  if (r.error) return { ok: false, missing: r.error.code === 'ENOENT' };
  return { ok: r.status === 0, missing: false };
}

function haveCmake() {
  const r = spawnSync('cmake', ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

let result;
if (!args.includes('--gyp') && haveCmake()) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const flags = ['compile', '--CDRNNKIT_BLAS=' + blas];
  if (debug) flags.push('--debug', '--CDRNNKIT_SANITIZE=ON');
  result = run(process.execPath, [cmakeJs, ...flags]);
} else {
  if (debug || blas !== 'auto')
    console.warn('rnnkit: --debug and --blas apply to the CMake build only');
  console.log('rnnkit: CMake not found, building the addon with node-gyp');
  const gyp = process.env.npm_config_node_gyp;
  result = gyp ? run(process.execPath, [gyp, 'rebuild']) : run('node-gyp', ['rebuild']);
}
if (!result.ok) {
  console.error(
    'rnnkit: building the native addon failed (a C++17 compiler is required; see README.md)',
  );
  process.exit(1);
}
