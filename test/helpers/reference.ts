// Helpers of the nn tests: seeded random data, closeness checks, and a float64 recurrent stack
// written out in plain JS from the equations in native/core/recurrent.h.
import { expect } from 'vitest';

import { GRU, LSTM, Random, RecurrentStack, RNN } from '../../lib/index';

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  new Random(seed).fillNormal(a, scale);
  return a;
}

/** |actual - expected| <= tol * (1 + |expected|) everywhere; reports the worst element. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = 'value',
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const r = Math.abs(actual[i] - expected[i]) / (tol * (1 + Math.abs(expected[i])));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  const detail = at < 0 ? '' : ` (worst [${at}]: got ${actual[at]}, expected ${expected[at]})`;
  expect(worst, `${what} is off by more than ${tol}${detail}`).toBeLessThanOrEqual(1);
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export type NativeCell = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru';
export interface RefLayer {
  wih: ArrayLike<number>;
  whh: ArrayLike<number>;
  bih: ArrayLike<number>;
  bhh: ArrayLike<number>;
}

/**
 * A float64 recurrent stack written from the equations in native/core/recurrent.h (PyTorch's
 * gate order). Padded steps leave the state alone and output zeros. `round`, where given, maps
 * both operands of every product of the weight matrices (a bf16 run's rounding). Returns y [T,B,H]
 * and the final states [L,B,H].
 */
export function referenceStack(
  cell: NativeCell,
  layers: RefLayer[],
  I: number,
  H: number,
  x: ArrayLike<number>,
  T: number,
  B: number,
  o: {
    h0?: ArrayLike<number>;
    c0?: ArrayLike<number>;
    lengths?: ArrayLike<number>;
    residual?: boolean;
    round?: (v: number) => number;
  } = {},
) {
  const r = o.round ?? ((v: number) => v);
  const L = layers.length;
  const G = cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1;
  const hT = new Float64Array(L * B * H);
  const cT = new Float64Array(L * B * H);
  let input: ArrayLike<number> = x;
  let inSize = I;
  layers.forEach((w, l) => {
    const out = new Float64Array(T * B * H);
    const h = new Float64Array(B * H);
    const c = new Float64Array(B * H);
    for (let k = 0; k < B * H; k++) {
      h[k] = o.h0 ? o.h0[l * B * H + k] : 0;
      c[k] = o.c0 ? o.c0[l * B * H + k] : 0;
    }
    for (let t = 0; t < T; t++) {
      for (let b = 0; b < B; b++) {
        if (o.lengths && t >= o.lengths[b]) continue;
        const xo = (t * B + b) * inSize;
        const gi = new Float64Array(G * H);
        const gh = new Float64Array(G * H);
        for (let g = 0; g < G * H; g++) {
          let si = w.bih[g];
          for (let k = 0; k < inSize; k++) si += r(w.wih[g * inSize + k]) * r(input[xo + k]);
          let sh = w.bhh[g];
          for (let k = 0; k < H; k++) sh += r(w.whh[g * H + k]) * r(h[b * H + k]);
          gi[g] = si;
          gh[g] = sh;
        }
        const hNew = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const hp = h[b * H + j];
          if (cell === 'rnn_tanh') hNew[j] = Math.tanh(gi[j] + gh[j]);
          else if (cell === 'rnn_relu') hNew[j] = Math.max(0, gi[j] + gh[j]);
          else if (cell === 'lstm') {
            const ig = sigmoid(gi[j] + gh[j]);
            const fg = sigmoid(gi[H + j] + gh[H + j]);
            const gg = Math.tanh(gi[2 * H + j] + gh[2 * H + j]);
            const og = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
            c[b * H + j] = fg * c[b * H + j] + ig * gg;
            hNew[j] = og * Math.tanh(c[b * H + j]);
          } else {
            const r = sigmoid(gi[j] + gh[j]);
            const z = sigmoid(gi[H + j] + gh[H + j]);
            const n = Math.tanh(gi[2 * H + j] + r * gh[2 * H + j]);
            hNew[j] = (1 - z) * n + z * hp;
          }
        }
        for (let j = 0; j < H; j++) {
          h[b * H + j] = hNew[j];
          out[(t * B + b) * H + j] = hNew[j] + (o.residual && l > 0 ? input[xo + j] : 0);
        }
      }
    }
    hT.set(h, l * B * H);
    cT.set(c, l * B * H);
    input = out;
    inSize = H;
  });
  return { y: input, hT, cT };
}

export function layersOf(stack: RecurrentStack): RefLayer[] {
  return Array.from({ length: stack.numLayers }, (_, l) => {
    const w = stack.layerWeights(l);
    return { wih: w.weightIh, whh: w.weightHh, bih: w.biasIh, bhh: w.biasHh };
  });
}

export function makeStack(
  cell: NativeCell,
  o: ConstructorParameters<typeof LSTM>[0],
): RecurrentStack {
  if (cell === 'lstm') return new LSTM(o);
  if (cell === 'gru') return new GRU(o);
  return new RNN({ ...o, nonlinearity: cell === 'rnn_relu' ? 'relu' : 'tanh' });
}

export const CELLS: NativeCell[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru'];
