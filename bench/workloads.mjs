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

/** Gate blocks per cell: the G in G*H. */
export const GATES = { lstm: 4, gru: 3, rnn: 1 };

/**
 * Every workload, in reporting order. `id` is what `--only` matches against (substring).
 * kind: 'train' (one optimizer step), 'forward' (full-sequence loss, no gradients) or
 * 'generate' (a whole sampling loop of `steps` tokens for `batch` rows).
 */
export function allWorkloads(quick) {
  const configs = quick ? QUICK_CONFIGS : CONFIGS;
  const steps = quick ? QUICK_GENERATE_STEPS : GENERATE_STEPS;
  const list = [];
  for (const size of ['S', 'M']) {
    for (const cell of ['lstm', 'gru', 'rnn']) {
      list.push({ id: `train/${size}/${cell}`, kind: 'train', size, cell, ...configs[size] });
    }
  }
  list.push({ id: 'forward/M/lstm', kind: 'forward', size: 'M', cell: 'lstm', ...configs.M });
  for (const batch of GENERATE_BATCHES) {
    const c = configs.M;
    list.push({
      id: `generate/M/lstm/b${batch}`,
      kind: 'generate',
      size: 'M',
      cell: 'lstm',
      ...c,
      B: batch,
      T: 1,
      steps,
    });
  }
  return list.map((w) => ({ ...w, V: VOCAB, G: GATES[w.cell] }));
}

/** Tokens one timed iteration processes: T*B for train/forward, batch*steps for generate. */
export function tokensPerIteration(w) {
  return w.kind === 'generate' ? w.B * w.steps : w.T * w.B;
}

/** Input width of layer l. */
function layerInput(w, l) {
  return l === 0 ? w.E : w.H;
}

/**
 * FLOPs per token by BENCH.md's formula: a recurrent layer costs 2*G*H*(I+H) forward and twice
 * that backward; the decoder 2*H*V forward and 4*H*V backward. The embedding lookup, the
 * nonlinearities, the loss, clipping, Adam and sampling are not counted.
 */
export function flopsPerToken(w) {
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
 * `phase` names the model call that performs it (bench/profile.mjs --phases times those).
 */
export function gemmShapes(w) {
  const { B, H, V, G } = w;
  const GH = G * H;
  const shapes = [];
  const add = (what, M, N, K, transA, transB, count) => {
    const backward = /gradient|backward/.test(what);
    const phase = `${what.startsWith('decoder') ? 'decoder' : 'rnn'}.${backward ? 'backward' : 'forward'}`;
    shapes.push({ what, phase, M, N, K, transA, transB, count });
  };
  if (w.kind === 'generate') {
    for (let l = 0; l < w.L; l++) {
      add(`L${l} input projection`, B, GH, layerInput(w, l), false, true, w.steps);
      add(`L${l} recurrent step`, B, GH, H, false, true, w.steps);
    }
    add('decoder', B, V, H, false, true, w.steps);
    return shapes;
  }
  const TB = w.T * B;
  for (let l = 0; l < w.L; l++) {
    const I = layerInput(w, l);
    add(`L${l} input projection`, TB, GH, I, false, true, 1);
    add(`L${l} recurrent step`, B, GH, H, false, true, w.T);
    if (w.kind === 'train') {
      add(`L${l} backward recurrent step`, B, H, GH, false, false, w.T);
      add(`L${l} weight-gradient W_ih`, GH, I, TB, true, false, 1);
      add(`L${l} weight-gradient W_hh`, GH, H, TB, true, false, 1);
      add(`L${l} input gradient`, TB, I, GH, false, false, 1);
    }
  }
  add('decoder', TB, V, H, false, true, 1);
  if (w.kind === 'train') {
    add('decoder input gradient', TB, H, V, false, false, 1);
    add('decoder weight-gradient', V, H, TB, true, false, 1);
  }
  return shapes;
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
