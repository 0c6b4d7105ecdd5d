// The benchmark workloads of /work/shared/BENCH.md (mirrored in docs/performance.md): model
// configurations, tokens per timed iteration, FLOP counts and the GEMM shapes each one performs.
// Shared by the orchestrator (bench/run.mjs) and the rnnkit worker; bench/torch_ref.py receives
// the resolved numbers on its command line, so it never needs this file.

export const VOCAB = 65;

/** Character-LM configurations (BENCH.md): embedding E, hidden H, layers L, batch B, steps T. */
export const CONFIGS = {
  S: { E: 64, H: 128, L: 1, B: 32, T: 64 },
  M: { E: 128, H: 512, L: 2, B: 64, T: 100 },
};

/** `--quick`: tiny shapes that exercise every code path in seconds and measure nothing. */
export const QUICK_CONFIGS = {
  S: { E: 16, H: 32, L: 1, B: 4, T: 8 },
  M: { E: 16, H: 48, L: 2, B: 4, T: 10 },
};

export const GENERATE_STEPS = 200;
export const QUICK_GENERATE_STEPS = 10;
export const GENERATE_BATCHES = [1, 64, 256];
/** The weight types generate/M/lstm also runs in, beside float32 (model.quantize). */
export const GENERATE_WEIGHTS = ['int8', 'bf16'];

/** Gate blocks per cell: the G in G*H. */
export const GATES = { lstm: 4, gru: 3, rnn: 1 };

/**
 * The sequence-to-sequence model and batch (BENCH.md): vocabulary V on both sides, embeddings E,
 * a bidirectional LSTM encoder of He per direction, an LSTM decoder of H, source length S,
 * T decoder steps (target tokens, eos included), batch B. bos and eos are the target's start and
 * end ids, the same for every system.
 */
export const SEQ2SEQ = { V: 8000, E: 128, He: 256, H: 512, S: 30, T: 30, B: 64, bos: 1, eos: 2 };
export const QUICK_SEQ2SEQ = { V: 50, E: 8, He: 8, H: 16, S: 5, T: 5, B: 4, bos: 1, eos: 2 };
export const ATTENTION_KINDS = ['dot', 'general', 'additive'];
/** Translation: greedy (beam 1) and beam 5, each at these batches, with general attention. */
export const TRANSLATE_BEAMS = [1, 5];
export const TRANSLATE_BATCHES = [1, 64];
export const TRANSLATE_ATTENTION = 'general';

/**
 * Every workload, in reporting order. `id` is what `--only` matches against (substring).
 * family 'lm' (the character language model) or 'seq2seq'; kind: 'train' (one optimizer step;
 * with `precision: 'bf16'`, mixed precision, rnnkit only, where the CPU has AVX512-BF16),
 * 'forward' (full-sequence loss, no gradients), 'generate' (a whole sampling loop of `steps`
 * tokens for `batch` rows) or 'translate' (encode B sources and decode `steps` tokens each); a
 * generate or translate workload with `weights` runs on the model quantized to int8 or bf16
 * (rnnkit only).
 */
export function allWorkloads(quick) {
  const configs = quick ? QUICK_CONFIGS : CONFIGS;
  const steps = quick ? QUICK_GENERATE_STEPS : GENERATE_STEPS;
  const lm = [];
  for (const size of ['S', 'M']) {
    for (const cell of ['lstm', 'gru', 'rnn']) {
      lm.push({ id: `train/${size}/${cell}`, kind: 'train', size, cell, ...configs[size] });
    }
  }
  // Mixed-precision training (bf16 products, float32 weights), rnnkit alone, beside train/M/lstm.
  lm.push({
    id: 'train/M/lstm/bf16',
    kind: 'train',
    size: 'M',
    cell: 'lstm',
    ...configs.M,
    precision: 'bf16',
  });
  lm.push({ id: 'forward/M/lstm', kind: 'forward', size: 'M', cell: 'lstm', ...configs.M });
  for (const weights of [null, ...GENERATE_WEIGHTS]) {
    for (const batch of GENERATE_BATCHES) {
      const c = configs.M;
      lm.push({
        id: `generate/M/lstm/${weights ? `${weights}/` : ''}b${batch}`,
        kind: 'generate',
        size: 'M',
        cell: 'lstm',
        ...c,
        B: batch,
        T: 1,
        steps,
        ...(weights && { weights }),
      });
    }
  }
  const s2s = quick ? QUICK_SEQ2SEQ : SEQ2SEQ;
  const seq2seq = ATTENTION_KINDS.map((attention) => ({
    id: `seq2seq/train/${attention}`,
    kind: 'train',
    attention,
    ...s2s,
  }));
  for (const weights of [null, ...GENERATE_WEIGHTS]) {
    for (const beam of TRANSLATE_BEAMS) {
      for (const batch of TRANSLATE_BATCHES) {
        const search = beam === 1 ? 'greedy' : `beam${beam}`;
        seq2seq.push({
          id: `seq2seq/translate/${search}/${weights ? `${weights}/` : ''}b${batch}`,
          kind: 'translate',
          attention: TRANSLATE_ATTENTION,
          ...s2s,
          B: batch,
          beam,
          steps: s2s.T,
          ...(weights && { weights }),
        });
      }
    }
  }
  return [
    ...lm.map((w) => ({ ...w, family: 'lm', V: VOCAB, G: GATES[w.cell] })),
    ...seq2seq.map((w) => ({ ...w, family: 'seq2seq', cell: 'lstm', G: GATES.lstm })),
  ];
}

/** Whether each iteration is a token loop of `steps` steps (generate, translate). */
function decodes(w) {
  return w.kind === 'generate' || w.kind === 'translate';
}

/**
 * Tokens one timed iteration processes: T*B for train/forward (seq2seq: target tokens),
 * batch*steps for generate and translate (the best hypothesis's tokens, whatever the beam).
 */
export function tokensPerIteration(w) {
  return decodes(w) ? w.B * w.steps : w.T * w.B;
}

/** What ms/step divides by: the token steps of a decoding loop, else 1 (one optimizer step). */
export function stepsPerIteration(w) {
  return decodes(w) ? w.steps : 1;
}

/** Input width of layer l. */
function layerInput(w, l) {
  return l === 0 ? w.E : w.H;
}

/**
 * FLOPs per token. Language model: BENCH.md's formula, a recurrent layer 2*G*H*(I+H) forward and
 * twice that backward, the decoder 2*H*V forward and 4*H*V backward. Seq2seq: the sum of its
 * matrix products (gemmShapes), which BENCH.md's LSTM formula gives for the recurrent layers.
 * The embedding lookups, the nonlinearities (additive attention's tanh among them), softmaxes,
 * the loss, clipping, Adam, sampling and beam bookkeeping are not counted.
 */
export function flopsPerToken(w) {
  if (w.family === 'seq2seq') {
    const flops = gemmShapes(w).reduce((sum, s) => sum + 2 * s.M * s.N * s.K * s.count, 0);
    return flops / tokensPerIteration(w);
  }
  let recurrent = 0;
  for (let l = 0; l < w.L; l++) recurrent += 2 * w.G * w.H * (layerInput(w, l) + w.H);
  const decoder = 2 * w.H * w.V;
  return w.kind === 'train' ? 3 * recurrent + 3 * decoder : recurrent + decoder;
}

/**
 * The GEMMs of one iteration, as row-major C[M,N] = op(A)[M,K] op(B)[K,N] with a call count,
 * in the textbook formulation (one input projection over all steps, one recurrent GEMM per step,
 * weight gradients over all steps). Their 2*M*N*K*count sums to exactly flopsPerToken *
 * tokensPerIteration, which is what makes the ceiling below comparable with achieved GFLOP/s.
 * `phase` names the language model's call that performs it (bench/profile.mjs --phases times
 * those); null for seq2seq.
 */
export function gemmShapes(w) {
  const shapes = [];
  const add = (what, M, N, K, transA, transB, count) => {
    const backward = /gradient|backward/.test(what);
    const phase =
      w.family === 'lm'
        ? `${what.startsWith('decoder') ? 'decoder' : 'rnn'}.${backward ? 'backward' : 'forward'}`
        : null;
    shapes.push({ what, phase, M, N, K, transA, transB, count });
  };
  if (w.family === 'seq2seq') {
    seq2seqShapes(w, add);
    return shapes;
  }
  const train = w.kind === 'train';
  // generate: per token, for B rows, `steps` times.
  const [T, repeat] = w.kind === 'generate' ? [1, w.steps] : [w.T, 1];
  const { B, H, V, G } = w;
  for (let l = 0; l < w.L; l++) {
    recurrentLayer(add, `L${l}`, { I: layerInput(w, l), H, G, T, B, train, repeat });
  }
  linearLayer(add, 'decoder', { N: T * B, inputs: H, outputs: V, train, repeat });
  return shapes;
}

/**
 * One recurrent layer over T steps of B rows (input I, hidden H, G gate blocks), `repeat` times:
 * the all-steps input projection, a recurrent GEMM per step and, when training, their backward.
 */
function recurrentLayer(add, name, { I, H, G, T, B, train, repeat = 1 }) {
  const GH = G * H;
  const TB = T * B;
  add(`${name} input projection`, TB, GH, I, false, true, repeat);
  add(`${name} recurrent step`, B, GH, H, false, true, T * repeat);
  if (!train) return;
  add(`${name} backward recurrent step`, B, H, GH, false, false, T);
  add(`${name} weight-gradient W_ih`, GH, I, TB, true, false, 1);
  add(`${name} weight-gradient W_hh`, GH, H, TB, true, false, 1);
  add(`${name} input gradient`, TB, I, GH, false, false, 1);
}

/** y [N, outputs] = x W^T, `repeat` times; when training also its input and weight gradients. */
function linearLayer(add, name, { N, inputs, outputs, train, repeat = 1 }) {
  add(name, N, outputs, inputs, false, true, repeat);
  if (!train) return;
  add(`${name} input gradient`, N, inputs, outputs, false, false, 1);
  add(`${name} weight-gradient`, outputs, inputs, N, true, false, 1);
}

/**
 * The seq2seq model's GEMMs: the encoder (both directions over S steps) and the bridge once per
 * batch; the decoder, attention and output layer teacher-forced over T steps (train), or one token
 * step at a time for each of R = B * beam hypotheses, `steps` times (translate). Attention as
 * native/core/attention.h computes it: keys from the encoder states once per batch (general:
 * W_a s; additive: W_k s), per decoder row the scores against its own source (dot, general: a
 * [T, S] product per row; additive's v . tanh(W_q q + W_k s) is elementwise but for W_q q), the
 * context [T, S] x [S, 2He] per row, and the combine layer tanh(W_c [context; q]).
 */
function seq2seqShapes(w, add) {
  const { S, B, E, He, H, V } = w;
  const train = w.kind === 'train';
  const Ht = 2 * He;
  for (const direction of ['forward', 'reverse']) {
    recurrentLayer(add, `encoder ${direction}`, { I: E, H: He, G: w.G, T: S, B, train });
  }
  for (const state of ['h', 'c']) {
    linearLayer(add, `bridge ${state}`, { N: B, inputs: Ht, outputs: H, train });
  }
  const [T, R, repeat] = train ? [w.T, B, 1] : [1, B * w.beam, w.steps];
  const N = T * R;
  recurrentLayer(add, 'decoder', { I: E, H, G: w.G, T, B: R, train, repeat });
  if (w.attention !== 'dot') {
    linearLayer(add, 'attention keys', { N: S * B, inputs: Ht, outputs: H, train });
  }
  if (w.attention === 'additive') {
    linearLayer(add, 'attention query', { N, inputs: H, outputs: H, train, repeat });
  } else {
    add('attention scores', T, S, H, false, true, R * repeat);
    if (train) {
      add('attention scores query gradient', T, H, S, false, false, B);
      add('attention scores key gradient', S, H, T, true, false, B);
    }
  }
  add('attention context', T, Ht, S, false, false, R * repeat);
  if (train) {
    add('attention context weight gradient', T, S, Ht, false, true, B);
    add('attention context state gradient', S, Ht, T, true, false, B);
  }
  linearLayer(add, 'attention combine', { N, inputs: Ht + H, outputs: H, train, repeat });
  linearLayer(add, 'output', { N, inputs: H, outputs: V, train, repeat });
}

/** A key naming a GEMM problem (shapes that differ only in purpose are measured once). */
export function shapeKey(s) {
  return `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'} ${s.M}x${s.N}x${s.K}`;
}

/**
 * The GEMM ceiling of a workload from measured GFLOP/s per shape: the time the workload's GEMMs
 * would take at the standalone BLAS speed of each shape, and the FLOP rate that implies
 * ("time-weighted": total FLOPs over the summed ideal GEMM time). Also reports the dominant
 * GEMM problem (the shape with the most FLOPs, summed over the purposes that share it) and its
 * own rate, for readers who prefer that simpler definition.
 */
export function ceilingOf(w, gflopsByKey) {
  let flops = 0;
  let seconds = 0;
  const byKey = new Map();
  for (const s of gemmShapes(w)) {
    const key = shapeKey(s);
    const f = 2 * s.M * s.N * s.K * s.count;
    const rate = gflopsByKey[key];
    if (!(rate > 0)) return null;
    flops += f;
    seconds += f / (rate * 1e9);
    const d = byKey.get(key) ?? { key, uses: [], flops: 0, gflops: rate };
    d.uses.push(s.what);
    d.flops += f;
    byKey.set(key, d);
  }
  const dominant = [...byKey.values()].reduce((a, b) => (b.flops > a.flops ? b : a));
  return { gflops: flops / seconds / 1e9, gemmSeconds: seconds, flops, dominant };
}
