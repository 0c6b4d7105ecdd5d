// One rnnkit measurement in its own process (so that its peak RSS is its own): a workload of
// bench/workloads.mjs at a given thread count, or the GEMM ceiling at a list of shapes.
// Started by bench/run.mjs as `node bench/rnnkit_worker.mjs '<task JSON>'`.
import { createRequire } from 'node:module';
import {
  Unavailable,
  peakRssMB,
  randomFloats,
  randomTokens,
  runWorker,
  timeIterations,
} from './common.mjs';

const require = createRequire(import.meta.url);

/** 64 printable characters: with the tokenizer's <unk> the vocabulary has BENCH.md's 65 ids. */
const ALPHABET = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_';

await runWorker(async (task) => {
  const rnnkit = require('../dist/index.js');
  const { native } = require('../dist/native.js');
  rnnkit.setThreads(task.threads);
  const info = rnnkit.info();
  const baselineRssMB = peakRssMB();
  const body = task.kind === 'ceiling' ? ceiling : workload;
  return { info, baselineRssMB, ...(await body(task, rnnkit, native)) };
});

async function workload(task, rnnkit, native) {
  const w = task.workload;
  const timing = { reps: task.reps, minRepMs: task.minRepMs };
  const tokenizer = w.kind === 'generate' ? new rnnkit.CharTokenizer([...ALPHABET]) : undefined;
  if (tokenizer && tokenizer.size !== w.V) {
    throw new Error(`bench tokenizer has ${tokenizer.size} ids, the workload needs ${w.V}`);
  }
  const model = new rnnkit.LanguageModel({
    vocabSize: w.V,
    embeddingSize: w.E,
    hiddenSize: w.H,
    numLayers: w.L,
    cell: w.cell,
    seed: 1,
    tokenizer,
  });

  if (w.kind === 'generate') {
    if (typeof native.lmGenerate !== 'function') {
      throw new Unavailable('the native generation loop (native.lmGenerate) is not built yet');
    }
    const prompts = Array.from({ length: w.B }, (_, b) => ALPHABET[(7 * b) % ALPHABET.length]);
    let seed = 1234;
    let produced = 0;
    const r = await timeIterations(async () => {
      const out = await model.generate({
        prompts,
        maxTokens: w.steps,
        temperature: 1,
        seed: seed++,
      });
      produced = out.reduce((n, s) => n + [...s].length, 0);
    }, timing);
    if (produced !== w.B * w.steps) {
      throw new Error(`generate produced ${produced} tokens, expected ${w.B * w.steps}`);
    }
    return { ...r, msPerStep: r.msPerIteration / w.steps };
  }

  const n = w.T * w.B;
  const inputs = randomTokens(n, w.V, 11);
  const targets = randomTokens(n, w.V, 12);
  if (w.kind === 'forward') {
    let sum = NaN;
    const r = await timeIterations(() => {
      sum = model.lossSum(inputs, targets, w.T, w.B).sum;
    }, timing);
    checkLoss(sum / n);
    return { ...r, msPerStep: r.msPerIteration, loss: sum / n };
  }

  // train: one full optimizer step per iteration.
  const params = model.parameters();
  const adam = new rnnkit.Adam(params, { lr: 1e-3 });
  const losses = [];
  const r = await timeIterations(() => {
    model.zeroGrad();
    const { loss } = model.lossAndGradients(inputs, targets, w.T, w.B);
    rnnkit.clipGradNorm(params, 5);
    adam.step();
    losses.push(loss);
  }, timing);
  losses.forEach(checkLoss);
  return {
    ...r,
    msPerStep: r.msPerIteration,
    firstLoss: losses[0],
    lastLoss: losses[losses.length - 1],
  };
}

/** A random-init character LM starts near ln(65) = 4.17 nats; NaN or nonsense means a broken kernel. */
function checkLoss(loss) {
  if (!(Number.isFinite(loss) && loss > 0 && loss < 50)) {
    throw new Error(`implausible loss ${loss}: the benchmark refuses to time a broken computation`);
  }
}

/** GFLOP/s of the exported native gemm (the BLAS rnnkit uses) at each shape, median of reps. */
async function ceiling(task, _rnnkit, native) {
  const timing = { reps: task.reps, minRepMs: task.minRepMs };
  const shapes = [];
  for (const s of task.shapes) {
    const A = randomFloats(s.M * s.K, 1);
    const B = randomFloats(s.K * s.N, 2);
    const C = new Float32Array(s.M * s.N);
    const shape = { ...pick(s), builtin: false, alpha: 1, beta: 0 };
    const r = await timeIterations(() => native.gemm(shape, A, B, C), timing);
    shapes.push({
      ...s,
      msPerCall: r.msPerIteration,
      gflops: (2 * s.M * s.N * s.K) / r.msPerIteration / 1e6,
    });
  }
  return { shapes };
}

function pick(s) {
  return { transA: s.transA, transB: s.transB, M: s.M, N: s.N, K: s.K };
}
