#!/usr/bin/env node
// Runs one rnnkit workload of the benchmark a fixed number of times, without the harness, for a
// profiler to watch, or with --phases times each model call of a train/forward iteration:
//   node bench/profile.mjs train/M/lstm --phases --threads 1
//   perf record -g node --perf-basic-prof bench/profile.mjs train/M/lstm --iters 3
//   valgrind --tool=callgrind node bench/profile.mjs train/M/lstm --iters 1 --quick
// Options: --iters N (default 3, after one untimed warm-up), --threads N (default 2), --quick
// (the smoke-test shapes), --phases (per-call medians, and how long the GEMMs each call performs
// take on their own at the same shapes: the rest is the call's non-GEMM work and overhead).
import { median, randomFloats, randomTokens } from './common.mjs';
import { allWorkloads, gemmShapes } from './workloads.mjs';
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
  console.error(
    'usage: node bench/profile.mjs <workload> [--iters N] [--threads N] [--quick] [--phases]',
  );
  console.error(`workloads: ${workloads.map((x) => x.id).join(', ')}`);
  process.exit(2);
}
const iters = option('--iters', 3);
const { rnnkit, native } = loadRnnkit(option('--threads', 2));

if (!args.includes('--phases')) {
  const { iteration, finish } = prepareWorkload(rnnkit, native, w);
  await iteration();
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    const cpu = process.cpuUsage();
    await iteration();
    const { user, system } = process.cpuUsage(cpu);
    const ms = (performance.now() - t).toFixed(1);
    console.log(
      `${w.id} iteration ${i + 1}: ${ms} ms (CPU ${((user + system) / 1000).toFixed(1)} ms)`,
    );
  }
  finish();
} else {
  if (w.family !== 'lm' || w.kind === 'generate') {
    console.error("--phases covers the language model's train and forward workloads");
    process.exit(2);
  }
  phases();
}

/**
 * The calls LanguageModel.lossAndGradients (train) or lossSum (forward) makes, in its order, each
 * timed on its own, plus zeroGrad, clipGradNorm and the Adam step; then each phase's GEMMs alone.
 */
function phases() {
  const model = new rnnkit.LanguageModel({
    vocabSize: w.V,
    embeddingSize: w.E,
    hiddenSize: w.H,
    numLayers: w.L,
    cell: w.cell,
    seed: 1,
  });
  const train = w.kind === 'train';
  const inputs = randomTokens(w.T * w.B, w.V, 11);
  const targets = randomTokens(w.T * w.B, w.V, 12);
  const loss = new rnnkit.SoftmaxCrossEntropy();
  const params = model.parameters();
  const adam = new rnnkit.Adam(params);
  // At one thread, process CPU time is the call's own cost even on a busy machine; with more
  // threads it also counts the BLAS threads' spinning, so wall time is used then.
  const byCpu = option('--threads', 2) === 1;
  const clock = byCpu
    ? () => {
        const { user, system } = process.cpuUsage();
        return (user + system) / 1000;
      }
    : () => performance.now();
  const times = new Map();
  const timed = (name, fn) => {
    const t = clock();
    const r = fn();
    if (!times.has(name)) times.set(name, []);
    times.get(name).push(clock() - t);
    return r;
  };
  for (let i = 0; i <= iters; i++) {
    if (i === 1) times.clear(); // the first pass is the warm-up
    if (train) timed('zeroGrad', () => model.zeroGrad());
    const x = timed('embedding.forward', () => model.embedding.forward(inputs));
    const { output } = timed('rnn.forward', () =>
      model.rnn.forward(x, { steps: w.T, batch: w.B, training: train }),
    );
    const logits = timed('decoder.forward', () => model.decoder.forward(output));
    timed('loss.forward', () => loss.forward(logits, targets, w.V));
    if (!train) continue;
    const dlogits = timed('loss.backward', () => loss.backward());
    const dout = timed('decoder.backward', () => model.decoder.backward(dlogits));
    const { dx } = timed('rnn.backward', () => model.rnn.backward(dout));
    timed('embedding.backward', () => model.embedding.backward(dx));
    timed('clipGradNorm', () => rnnkit.clipGradNorm(params, 5));
    timed('adam.step', () => adam.step());
  }

  const gemmMs = new Map();
  for (const s of gemmShapes(w)) {
    const A = randomFloats(s.M * s.K, 1);
    const B = randomFloats(s.K * s.N, 2);
    const C = new Float32Array(s.M * s.N);
    const shape = { M: s.M, N: s.N, K: s.K, transA: s.transA, transB: s.transB };
    Object.assign(shape, { kernel: 'auto', alpha: 1, beta: 0 });
    native.gemm(shape, A, B, C);
    const samples = [];
    for (let r = 0; r < 5; r++) {
      const t = clock();
      for (let c = 0; c < s.count; c++) native.gemm(shape, A, B, C);
      samples.push(clock() - t);
    }
    gemmMs.set(s.phase, (gemmMs.get(s.phase) ?? 0) + median(samples));
  }

  const total = [...times.values()].reduce((a, v) => a + median(v), 0);
  const what = byCpu ? 'CPU ms' : 'ms';
  console.log(
    `${w.id}: ${w.T}x${w.B} tokens, ${rnnkit.info().gemm}, ${option('--threads', 2)} thread(s), ` +
      `median of ${iters}, ${byCpu ? 'process CPU time' : 'wall time'}\n`,
  );
  console.log(`| call | ${what} | share | its GEMMs alone, ${what} | rest, ${what} |`);
  console.log('| ---- | -: | ----: | ------------------: | -------: |');
  for (const [name, v] of times) {
    const ms = median(v);
    const g = gemmMs.get(name);
    const cells = g === undefined ? ['', ''] : [g.toFixed(1), (ms - g).toFixed(1)];
    console.log(
      `| ${name} | ${ms.toFixed(1)} | ${((100 * ms) / total).toFixed(1)}% | ${cells.join(' | ')} |`,
    );
  }
  console.log(`| total | ${total.toFixed(1)} | 100% | | |`);
}
