#!/usr/bin/env node
// Locates OpenBLAS for the node-gyp build (CMake has its own find_path/find_library):
// --gyp prints 1 when both cblas.h and libopenblas are present, else 0; --include prints the
// folder holding cblas.h.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const includeDirs = [
  '/usr/include/x86_64-linux-gnu',
  '/usr/include/aarch64-linux-gnu',
  '/usr/include/openblas',
  '/usr/include',
  '/usr/local/include',
  '/opt/homebrew/opt/openblas/include',
];
const libDirs = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
  '/opt/homebrew/opt/openblas/lib',
];

const include = includeDirs.find((d) => fs.existsSync(path.join(d, 'cblas.h')));
const lib = libDirs.find((d) =>
  ['libopenblas.so', 'libopenblas.a', 'libopenblas.dylib'].some((f) =>
    fs.existsSync(path.join(d, f)),
  ),
);

if (process.argv.includes('--include')) console.log(include ?? '');
else console.log(include && lib ? '1' : '0');
