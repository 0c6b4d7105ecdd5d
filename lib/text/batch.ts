// Padded, time-major batches of (source, target) token sequences, and the per-row layout helpers
// the bidirectional encoder and the bridge need.

/** A batch of sources (and, for training, targets) padded to the longest row, time-major. */
export interface SourceBatch {
  batch: number;
  /** Longest source S; ids [S, B], rows padded with 0 after their length. */
  sourceSteps: number;
  source: Int32Array;
  /** Valid source positions of each row (1..S). */
  sourceLengths: Int32Array;
}

export interface PairBatch extends SourceBatch {
  /** Decoder steps T = longest target + 1. */
  targetSteps: number;
  /** Decoder inputs [T, B]: bos, then the target; padded with 0. */
  targetIn: Int32Array;
  /** Decoder targets [T, B]: the target, then eos; padded with ignoreIndex. */
  targetOut: Int32Array;
  /** Target length + 1 (the eos step) of each row. */
  targetLengths: Int32Array;
  /** Target tokens counted by the loss (eos included). */
  tokens: number;
}

/** The cross-entropy's ignore index for padded target positions. */
export const IGNORE_INDEX = -1;

/** Pads sources (each non-empty) into a time-major batch. */
export function sourceBatch(sources: readonly Int32Array[]): SourceBatch {
  const B = sources.length;
  const S = Math.max(...sources.map((s) => s.length));
  const source = new Int32Array(S * B);
  const sourceLengths = new Int32Array(B);
  sources.forEach((s, b) => {
    if (s.length === 0) throw new RangeError(`source ${b} of the batch is empty`);
    sourceLengths[b] = s.length;
    for (let t = 0; t < s.length; t++) source[t * B + b] = s[t];
  });
  return { batch: B, sourceSteps: S, source, sourceLengths };
}

/** Pads (source, target) pairs for teacher forcing: input bos + target, output target + eos. */
export function pairBatch(
  sources: readonly Int32Array[],
  targets: readonly Int32Array[],
  bos: number,
  eos: number,
): PairBatch {
  const src = sourceBatch(sources);
  const B = src.batch;
  const T = Math.max(...targets.map((t) => t.length)) + 1;
  const targetIn = new Int32Array(T * B);
  const targetOut = new Int32Array(T * B).fill(IGNORE_INDEX);
  const targetLengths = new Int32Array(B);
  let tokens = 0;
  targets.forEach((y, b) => {
    const n = y.length;
    targetLengths[b] = n + 1;
    tokens += n + 1;
    targetIn[b] = bos;
    for (let t = 0; t < n; t++) {
      targetIn[(t + 1) * B + b] = y[t];
      targetOut[t * B + b] = y[t];
    }
    targetOut[n * B + b] = eos;
  });
  return { ...src, targetSteps: T, targetIn, targetOut, targetLengths, tokens };
}

/**
 * dst [T, B, W] = src with each row b reversed within its own length (steps t >= lengths[b] are
 * zero), so a recurrent stack reading dst reads row b backwards from its last real token. The
 * map is its own inverse on the valid steps.
 */
export function reverseRows(
  src: Float32Array,
  dst: Float32Array,
  B: number,
  W: number,
  lengths: Int32Array,
): Float32Array {
  dst.fill(0);
  for (let b = 0; b < B; b++) {
    const n = lengths[b];
    for (let t = 0; t < n; t++) {
      const from = ((n - 1 - t) * B + b) * W;
      dst.set(src.subarray(from, from + W), (t * B + b) * W);
    }
  }
  return dst;
}

/** dst [N, Wa + Wb] = [a; b] row by row, a [N, Wa], b [N, Wb]. */
export function concatRows(
  a: Float32Array,
  b: Float32Array,
  dst: Float32Array,
  N: number,
  Wa: number,
  Wb: number,
): Float32Array {
  for (let n = 0; n < N; n++) {
    dst.set(a.subarray(n * Wa, (n + 1) * Wa), n * (Wa + Wb));
    dst.set(b.subarray(n * Wb, (n + 1) * Wb), n * (Wa + Wb) + Wa);
  }
  return dst;
}

/** The inverse of concatRows: src [N, Wa + Wb] -> a [N, Wa], b [N, Wb]. */
export function splitRows(
  src: Float32Array,
  a: Float32Array,
  b: Float32Array,
  N: number,
  Wa: number,
  Wb: number,
): void {
  const W = Wa + Wb;
  for (let n = 0; n < N; n++) {
    a.set(src.subarray(n * W, n * W + Wa), n * Wa);
    b.set(src.subarray(n * W + Wa, (n + 1) * W), n * Wb);
  }
}

/** [B, L, H] <-> [L, B, H]: dst[l, b] = src[b, l] (forward), or back with `inverse`. */
export function swapLeadingAxes(
  src: Float32Array,
  dst: Float32Array,
  B: number,
  L: number,
  H: number,
  inverse = false,
): Float32Array {
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      const bl = (b * L + l) * H;
      const lb = (l * B + b) * H;
      if (inverse) dst.set(src.subarray(lb, lb + H), bl);
      else dst.set(src.subarray(bl, bl + H), lb);
    }
  }
  return dst;
}
