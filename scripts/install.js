#!/usr/bin/env node
// npm's install step for rnnkit. A package from the registry carries prebuilt binaries
// (prebuilds/); where one loads on this machine nothing is compiled. The addon is built from
// source (scripts/build-native.js) only where none fits (another platform, a musl libc, a clone of
// the repository) or when asked: `npm install --build-from-source` (npm_config_build_from_source)
// or RNNKIT_BUILD_FROM_SOURCE=1.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const asked =
  process.env.npm_config_build_from_source === 'true' ||
  process.env.RNNKIT_BUILD_FROM_SOURCE === '1';

function prebuiltLoads() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const file = path.join(dir, 'rnnkit-baseline.node');
  if (!fs.existsSync(file)) return false;
  // In a child process, so that a binary that does not fit (another libc, say) is only reported.
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).cpu()`], {
    encoding: 'utf8',
  });
  if (r.status !== 0)
    console.warn(
      `rnnkit: the prebuilt binary ${file} does not load here (${r.stderr.trim().split('\n')[0]}); building from source`,
    );
  return r.status === 0;
}

if (!asked && prebuiltLoads()) {
  console.log('rnnkit: using the prebuilt native addon');
  process.exit(0);
}
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
