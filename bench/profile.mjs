#!/usr/bin/env node
// Runs one rnnkit workload of the benchmark a fixed number of times, without the harness, for a
// profiler to watch:
//   perf record -g node --perf-basic-prof bench/profile.mjs train/M/lstm --iters 3
//   valgrind --tool=callgrind node bench/profile.mjs train/M/lstm --iters 1 --quick
// Options: --iters N (default 3, after one untimed warm-up), --threads N (default 2), --quick
// (the smoke-test shapes). Prints ms per iteration.
import { allWorkloads } from './workloads.mjs';
import { loadRnnkit, prepareWorkload } from './rnnkit_workload.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const id = args.find(
  (a, i) => !a.startsWith('--') && !['--iters', '--threads'].includes(args[i - 1]),
);
const workloads = allWorkloads(args.includes('--quick'));
const w = workloads.find((x) => x.id === id);
if (!w) {
  console.error(`usage: node bench/profile.mjs <workload> [--iters N] [--threads N] [--quick]`);
  console.error(`workloads: ${workloads.map((x) => x.id).join(', ')}`);
  process.exit(2);
}
const { rnnkit, native } = loadRnnkit(option('--threads', 2));
const { iteration, finish } = prepareWorkload(rnnkit, native, w);
await iteration();
for (let i = 0, n = option('--iters', 3); i < n; i++) {
  const t = performance.now();
  await iteration();
  console.log(`${w.id} iteration ${i + 1}: ${(performance.now() - t).toFixed(1)} ms`);
}
finish();
