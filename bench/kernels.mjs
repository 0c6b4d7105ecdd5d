#!/usr/bin/env node
// Kernel micro-benchmark: one recurrent layer's whole-sequence forward + backward (the native
// kernels alone, no model around them) at I = H = 512, B = 64, T = 100, with the GFLOP/s it
// reaches beside the BLAS's own sgemm rate at the layer's input-projection shape.
// Usage: npm run bench:kernels -- [--cell lstm|gru|rnn] [--threads N] [--reps N]
import { createRequire } from 'node:module';

import { commandLine } from './common.mjs';

const require = createRequire(import.meta.url);
const rnnkit = require('../dist/index.js');
const addon = require(rnnkit.info().addon);

const { values } = commandLine(
  'usage: npm run bench:kernels -- [--cell lstm|gru|rnn] [--threads N] [--reps N]',
  {
    cell: { type: 'string', default: 'lstm' },
    threads: { type: 'string', default: '2' },
    reps: { type: 'string', default: '5' },
  },
  { counts: ['threads', 'reps'] },
);
const G = { lstm: 4, gru: 3, rnn: 1 }[values.cell];
if (!G) {
  console.error(`--cell must be lstm, gru or rnn, got '${values.cell}'`);
  process.exit(2);
}
rnnkit.setThreads(values.threads);
const { reps } = values;
const [I, H, B, T] = [512, 512, 64, 100];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(fn) {
  fn();
  const ms = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

const layer = new rnnkit.RecurrentStack(values.cell, { inputSize: I, hiddenSize: H, seed: 1 });
const x = new Float32Array(T * B * I).map((_, i) => Math.sin(i));
const dy = new Float32Array(T * B * H).fill(0.01);
const ms = time(() => {
  layer.forward(x, { steps: T, batch: B, training: true });
  layer.backward(dy);
});
const flops = 3 * 2 * G * H * (I + H) * T * B;

const [M, N, K] = [T * B, G * H, I];
const A = new Float32Array(M * K).fill(0.01);
const Bm = new Float32Array(N * K).fill(0.01);
const C = new Float32Array(M * N);
const shape = { transA: false, transB: true, kernel: 'auto', M, N, K, alpha: 1, beta: 0 };
const gemmMs = time(() => addon.gemm(shape, A, Bm, C));
const gemmRate = (2 * M * N * K) / gemmMs / 1e6;

const info = rnnkit.info();
console.log(`${values.cell.toUpperCase()} layer I=${I} H=${H} B=${B} T=${T}, forward + backward`);
console.log(`GEMM: ${info.gemm}, ${info.threads} thread(s); median of ${reps}`);
console.log(
  `  ${ms.toFixed(1)} ms   ${Math.round((T * B) / (ms / 1000)).toLocaleString('en-US')} tokens/s   ` +
    `${(flops / ms / 1e6).toFixed(1)} GFLOP/s`,
);
console.log(
  `  sgemm [${M}x${K}]x[${K}x${N}]: ${gemmRate.toFixed(1)} GFLOP/s; ` +
    `the layer reaches ${((100 * flops) / ms / 1e6 / gemmRate).toFixed(0)}% of it`,
);
