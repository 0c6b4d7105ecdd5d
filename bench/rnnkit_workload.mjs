// rnnkit's side of each workload, shared by the measuring worker (bench/rnnkit_worker.mjs) and the
// profiling driver (bench/profile.mjs): builds the model and inputs and returns one iteration.
import { createRequire } from 'node:module';
import { Unavailable, randomTokens } from './common.mjs';

const require = createRequire(import.meta.url);

/** 64 printable characters: with the tokenizer's <unk> the vocabulary has BENCH.md's 65 ids. */
const ALPHABET = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_';

/** The built package (../dist) and its native addon, with the GEMM thread count set. */
export function loadRnnkit(threads) {
  const rnnkit = require('../dist/index.js');
  const { native } = require('../dist/core/native.js');
  rnnkit.setThreads(threads);
  return { rnnkit, native };
}

/**
 * Sets up workload `w` and returns { iteration, finish }: `iteration()` (sync, or async for
 * generate and translate) is what one timed iteration runs; `finish()` checks the work was real
 * (finite loss, every token generated) and returns what the result record should add. The
 * iterations are exactly BENCH.md's: train = zeroGrad, lossAndGradients, clipGradNorm(5), Adam
 * step; forward = lossSum; generate = model.generate of `steps` tokens for `B` one-character
 * prompts; translate = Seq2Seq.beamSearch (encoder, then the native decoding loop) of B sources.
 */
export function prepareWorkload(rnnkit, native, w) {
  if (w.family === 'seq2seq') return prepareSeq2Seq(rnnkit, w);
  const model = buildModel(rnnkit, w);
  if (w.kind === 'generate') {
    if (typeof native.lmGenerateAsync !== 'function') {
      throw new Unavailable('the native generation loop (native.lmGenerateAsync) is not built yet');
    }
    const run = quantized(model, w);
    const loop = generateLoop(w, (options) => run.generate(options));
    // The packed weights' bytes, as the native loop holds them.
    const weightMB = new native.TokenLoop(run.nativeWeights()).weightBytes / 2 ** 20;
    return { ...loop, finish: async () => ({ ...(await loop.finish()), weightMB }) };
  }

  const n = w.T * w.B;
  const inputs = randomTokens(n, w.V, 11);
  const targets = randomTokens(n, w.V, 12);
  if (w.kind === 'forward') {
    let sum = NaN;
    return {
      iteration: () => {
        sum = model.lossSum(inputs, targets, w.T, w.B).sum;
      },
      finish: () => ({ loss: checkLoss(sum / n) }),
    };
  }
  const precision = w.precision ?? 'float32';
  // Emulated bf16 (RNNKIT_BF16=emulate) is a numerics check, slower than float32: not timed.
  if (precision === 'bf16' && rnnkit.info().bf16?.products !== 'avx512-bf16') {
    throw new Unavailable('bf16 training products need a CPU with AVX512-BF16');
  }
  return trainLoop(rnnkit, model, () =>
    model.lossAndGradients(inputs, targets, w.T, w.B, undefined, precision),
  );
}

/** The model the workload runs: `model`, or quantized to `w.weights`. */
function quantized(model, w) {
  if (!w.weights) return model;
  if (typeof model.quantize !== 'function') {
    throw new Unavailable('quantized weights (model.quantize) are not in this build');
  }
  return model.quantize(w.weights);
}

/** One optimizer step of `model` per iteration: zeroGrad, `lossAndGradients()`, clip 5, Adam. */
function trainLoop(rnnkit, model, lossAndGradients) {
  const params = model.parameters();
  const adam = new rnnkit.Adam(params, { lr: 1e-3 });
  const losses = [];
  return {
    iteration: () => {
      model.zeroGrad();
      const { loss } = lossAndGradients();
      rnnkit.clipGradNorm(params, 5);
      adam.step();
      losses.push(loss);
    },
    finish: () => {
      losses.forEach(checkLoss);
      return { firstLoss: losses[0], lastLoss: losses[losses.length - 1] };
    },
  };
}

/** The seq2seq workload's model (BENCH.md's; Luong attention without input feeding), seeded. */
export function buildSeq2Seq(rnnkit, w) {
  return new rnnkit.Seq2Seq({
    sourceVocab: w.V,
    targetVocab: w.V,
    embeddingSize: w.E,
    cell: w.cell,
    hiddenSize: w.H,
    encoderHiddenSize: w.He,
    encoderLayers: 1,
    decoderLayers: 1,
    bidirectional: true,
    attention: w.attention,
    inputFeeding: false,
    bos: w.bos,
    eos: w.eos,
    seed: 1,
  });
}

/** `rows` sequences of `length` ids uniform in [0, V). */
function randomRows(rows, length, V, seed) {
  const ids = randomTokens(rows * length, V, seed);
  return Array.from({ length: rows }, (_, b) => ids.subarray(b * length, (b + 1) * length));
}

/**
 * Seq2seq train: B synthetic pairs of S source ids and T - 1 target ids (T decoder steps with the
 * eos). Translate: B sources of S ids decoded to exactly `steps` tokens each: an untrained model
 * could end a hypothesis anywhere, so the end token's output bias is set far down and none ends.
 */
function prepareSeq2Seq(rnnkit, w) {
  const model = buildSeq2Seq(rnnkit, w);
  const sources = randomRows(w.B, w.S, w.V, 21);
  if (w.kind === 'train') {
    const batch = rnnkit.pairBatch(sources, randomRows(w.B, w.T - 1, w.V, 22), w.bos, w.eos);
    return trainLoop(rnnkit, model, () => model.lossAndGradients(batch));
  }
  model.output.bias.data[w.eos] = -1e4;
  const run = quantized(model, w);
  const batch = rnnkit.sourceBatch(sources);
  const options = {
    beam: w.beam,
    nBest: 1,
    maxLength: w.steps,
    lengthPenalty: w.beam > 1 ? 0.6 : 0,
  };
  let lengths = new Int32Array(0);
  return {
    iteration: async () => {
      lengths = (await run.beamSearch(batch, options)).lengths;
    },
    finish: () => {
      const produced = lengths.reduce((n, x) => n + x, 0);
      if (produced !== w.B * w.steps) {
        throw new Error(`translate produced ${produced} tokens, expected ${w.B * w.steps}`);
      }
      return {};
    },
  };
}

/** The workload's model, seeded; generate workloads get a 65-id character tokenizer. */
export function buildModel(rnnkit, w) {
  const tokenizer = w.kind === 'generate' ? new rnnkit.CharTokenizer([...ALPHABET]) : undefined;
  if (tokenizer && tokenizer.size !== w.V) {
    throw new Error(`bench tokenizer has ${tokenizer.size} ids, the workload needs ${w.V}`);
  }
  return new rnnkit.LanguageModel({
    vocabSize: w.V,
    embeddingSize: w.E,
    hiddenSize: w.H,
    numLayers: w.L,
    cell: w.cell,
    seed: 1,
    tokenizer,
  });
}

/**
 * The generate workload on rnnkit's ONNX path: OnnxGenerator (onnxruntime-node in a worker
 * thread, rnnkit's sampler) over `file`, rnnkit's own step-model export of buildModel(w).
 */
export async function prepareOnnxGenerator(rnnkit, w, file, threads) {
  if (typeof rnnkit.OnnxGenerator?.load !== 'function') {
    throw new Unavailable('rnnkit.OnnxGenerator is not in this build');
  }
  const generator = await rnnkit.OnnxGenerator.load(file, { threads });
  const loop = generateLoop(w, (options) => generator.generate(options));
  return {
    iteration: loop.iteration,
    finish: async () => {
      await generator.close();
      return loop.finish();
    },
  };
}

/** One generate iteration: `steps` tokens at temperature 1 for B one-character prompts. */
function generateLoop(w, generate) {
  const prompts = Array.from({ length: w.B }, (_, b) => ALPHABET[(7 * b) % ALPHABET.length]);
  let seed = 1234;
  let produced = 0;
  return {
    iteration: async () => {
      const out = await generate({ prompts, maxTokens: w.steps, temperature: 1, seed: seed++ });
      produced = out.reduce((n, s) => n + [...s].length, 0);
    },
    finish: () => {
      if (produced !== w.B * w.steps) {
        throw new Error(`generate produced ${produced} tokens, expected ${w.B * w.steps}`);
      }
      return {};
    },
  };
}

/**
 * A fresh model starts near ln(V) nats (4.17 for the character LM, 8.99 for seq2seq); NaN or
 * nonsense means a broken kernel.
 */
function checkLoss(loss) {
  if (!(Number.isFinite(loss) && loss > 0 && loss < 50)) {
    throw new Error(`implausible loss ${loss}: the benchmark refuses to time a broken computation`);
  }
  return loss;
}
