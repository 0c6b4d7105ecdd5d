#!/usr/bin/env node
// Checks (--check) or applies (--fix) clang-format on the C++ sources under native/.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const fix = process.argv.includes('--fix');
const files = execFileSync(
  'git',
  ['ls-files', '--cached', '--others', '--exclude-standard', 'native'],
  {
    cwd: root,
    encoding: 'utf8',
  },
)
  .split('\n')
  .filter((f) => /\.(h|cc|cpp|cu|cuh)$/.test(f));

const probe = spawnSync('clang-format', ['--version'], { stdio: 'ignore' });
if (probe.error || probe.status !== 0) {
  console.error('rnnkit: clang-format is not installed (apt-get install clang-format)');
  process.exit(1);
}
const args = fix ? ['-i', ...files] : ['--dry-run', '--Werror', ...files];
const r = spawnSync('clang-format', args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
