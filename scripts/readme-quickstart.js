#!/usr/bin/env node
// Runs the shell commands of README.md's "Quick start" section exactly as written, in order, from
// the repository root, so that the front door of the project is tested the way a new user meets
// it. `npm test` is left to the caller (CI runs it last). Options:
//   --append 'CMD=ARGS'   append ARGS to the commands that run `npx CMD` (CI shortens training
//                         with --append 'rnnkit train=--steps 20'); may be repeated
//   --list                print the commands instead of running them
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const appends = args
  .flatMap((a, i) => (a === '--append' ? [args[i + 1]] : []))
  .map((spec) => {
    const eq = spec.indexOf('=');
    if (eq < 1) {
      console.error(`rnnkit: --append takes 'CMD=ARGS', got '${spec}'`);
      process.exit(2);
    }
    return { cmd: spec.slice(0, eq), extra: spec.slice(eq + 1) };
  });

const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start'));
if (!section) {
  console.error('rnnkit: README.md has no "## Quick start" section');
  process.exit(1);
}
const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
  .flatMap((m) => m[1].split('\n'))
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#') && line !== 'npm test')
  .map((line) =>
    appends.reduce(
      (cmd, { cmd: name, extra }) =>
        cmd.replace(new RegExp(`(npx ${name}\\b[^&|;]*)`), (m) => `${m.trimEnd()} ${extra}`),
      line,
    ),
  );
if (commands.length === 0) {
  console.error('rnnkit: README.md\'s "Quick start" shows no commands');
  process.exit(1);
}
for (const cmd of commands) {
  if (args.includes('--list')) {
    console.log(cmd);
    continue;
  }
  console.log(`\n$ ${cmd}`);
  const r = spawnSync('bash', ['-c', cmd], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`rnnkit: README command failed (exit ${r.status}): ${cmd}`);
    process.exit(1);
  }
}
