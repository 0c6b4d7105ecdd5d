#!/usr/bin/env node
// Compares two checkouts of rnnkit on benchmark workloads, interleaved: each round runs a fresh
// `node bench/profile.mjs <workload>` in checkout A, then in checkout B, so that the host's load
// drifting over minutes falls on both alike (two separate full runs minutes apart differ by more
// than the changes worth measuring; see docs/performance.md, "Noise"). Each checkout needs its
// own build (npm run build and its addon).
//   node bench/ab.mjs --a ../before --b . --rounds 8 --iters 30 --threads 2 seq2seq/translate/greedy/b1
// Prints each round's mean ms per iteration (wall and process CPU), then per workload the median
// and range over the rounds and A ÷ B of the medians (above 1: B is faster).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { commandLine, median } from './common.mjs';

const usage =
  'usage: node bench/ab.mjs --a DIR --b DIR [--rounds N] [--iters N] [--threads N] <workload>...';
const { values, positionals: workloads } = commandLine(
  usage,
  {
    a: { type: 'string' },
    b: { type: 'string' },
    rounds: { type: 'string', default: '8' },
    iters: { type: 'string', default: '30' },
    threads: { type: 'string', default: '2' },
  },
  { positionals: true, counts: ['rounds', 'iters', 'threads'] },
);
const { rounds, iters, threads } = values;
if (!values.a || !values.b || workloads.length === 0) {
  console.error(usage);
  process.exit(2);
}
const sides = { A: path.resolve(values.a), B: path.resolve(values.b) };

/** One fresh process of the checkout's profile.mjs: mean wall and CPU ms per iteration. */
function run(dir, workload) {
  const out = execFileSync(
    process.execPath,
    ['bench/profile.mjs', workload, '--threads', String(threads), '--iters', String(iters)],
    { cwd: dir, encoding: 'utf8' },
  );
  const lines = [...out.matchAll(/: ([\d.]+) ms \(CPU ([\d.]+) ms\)/g)];
  if (lines.length !== iters) {
    throw new Error(`${dir}: expected ${iters} timed iterations of ${workload}, read:\n${out}`);
  }
  const mean = (i) => lines.reduce((s, m) => s + Number(m[i]), 0) / lines.length;
  return { wall: mean(1), cpu: mean(2) };
}

const range = (xs) =>
  `${median(xs).toFixed(2)} [${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}]`;
for (const workload of workloads) {
  const seen = { A: { wall: [], cpu: [] }, B: { wall: [], cpu: [] } };
  for (let r = 1; r <= rounds; r++) {
    for (const side of ['A', 'B']) {
      const { wall, cpu } = run(sides[side], workload);
      seen[side].wall.push(wall);
      seen[side].cpu.push(cpu);
      console.log(
        `${workload} round ${r} ${side}: wall ${wall.toFixed(2)} ms, CPU ${cpu.toFixed(2)} ms`,
      );
    }
  }
  for (const kind of ['wall', 'cpu']) {
    const [a, b] = [seen.A[kind], seen.B[kind]];
    console.log(
      `${workload} ${kind} ms/iteration: A ${range(a)}, B ${range(b)}, A ÷ B ${(median(a) / median(b)).toFixed(3)}`,
    );
  }
}
