// Layer-level behaviour of the nn classes over the native kernels, checked against float64
// reference computations written out in plain JS: embeddings, linear layers, the recurrent cells
// (RNN, LSTM, GRU; stacked, residual, padded, with dropout), the ONNX weight layout, the
// optimizers, weight tying in LanguageModel, and the two GEMM backends.
import { describe, expect, it } from 'vitest';
import {
  Adam,
  clipGradNorm,
  Embedding,
  GRU,
  info,
  LanguageModel,
  Linear,
  LSTM,
  Parameter,
  Random,
  RecurrentStack,
  RNN,
  SGD,
  SoftmaxCrossEntropy,
  type CellType,
  type RecurrentState,
} from '../dist/index.js';
import { native } from '../dist/core/native.js';

// ---------------------------------------------------------------------------------------------
// Helpers

function randn(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  new Random(seed).fillNormal(a, scale);
  return a;
}

/** |actual - expected| <= tol * (1 + |expected|) everywhere; reports the worst element. */
function expectClose(
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

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

type NativeCell = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru';
interface RefLayer {
  wih: ArrayLike<number>;
  whh: ArrayLike<number>;
  bih: ArrayLike<number>;
  bhh: ArrayLike<number>;
}

/**
 * A float64 recurrent stack written from the equations in native/core/recurrent.h (PyTorch's
 * gate order). Padded steps leave the state alone and output zeros. Returns y [T,B,H] and the
 * final states [L,B,H].
 */
function referenceStack(
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
  } = {},
) {
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
          for (let k = 0; k < inSize; k++) si += w.wih[g * inSize + k] * input[xo + k];
          let sh = w.bhh[g];
          for (let k = 0; k < H; k++) sh += w.whh[g * H + k] * h[b * H + k];
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

function layersOf(stack: RecurrentStack): RefLayer[] {
  return Array.from({ length: stack.numLayers }, (_, l) => {
    const w = stack.layerWeights(l);
    return { wih: w.weightIh, whh: w.weightHh, bih: w.biasIh, bhh: w.biasHh };
  });
}

function makeStack(cell: NativeCell, o: ConstructorParameters<typeof LSTM>[0]): RecurrentStack {
  if (cell === 'lstm') return new LSTM(o);
  if (cell === 'gru') return new GRU(o);
  return new RNN({ ...o, nonlinearity: cell === 'rnn_relu' ? 'relu' : 'tanh' });
}

const CELLS: NativeCell[] = ['rnn_tanh', 'rnn_relu', 'lstm', 'gru'];

// ---------------------------------------------------------------------------------------------

describe('Embedding', () => {
  it('forward copies table rows and backward adds into them (repeated ids add up)', () => {
    const emb = new Embedding(5, 3, new Random(1));
    expect(emb.weight.shape).toEqual([5, 3]);
    const ids = Int32Array.from([4, 0, 4, 2]);
    const out = emb.forward(ids);
    expect(out.length).toBe(ids.length * 3);
    ids.forEach((id, n) =>
      expect(Array.from(out.subarray(n * 3, n * 3 + 3))).toEqual(
        Array.from(emb.weight.data.subarray(id * 3, id * 3 + 3)),
      ),
    );
    emb.weight.grad.fill(0.5);
    const dout = Float32Array.from({ length: 12 }, (_, i) => i + 1);
    emb.backward(dout);
    const expected = new Float64Array(15).fill(0.5);
    ids.forEach((id, n) => {
      for (let e = 0; e < 3; e++) expected[id * 3 + e] += dout[n * 3 + e];
    });
    expect(Array.from(emb.weight.grad)).toEqual(Array.from(expected));
    expect(emb.describe()).toBe('Embedding(5, 3)');
    expect(emb.numParameters()).toBe(15);
  });
});

describe('Linear', () => {
  const N = 4;
  const I = 5;
  const O = 3;

  it('forward is x W^T + b and backward gives dx, dW, db (added)', () => {
    const lin = new Linear(I, O, { rng: new Random(2) });
    const x = randn(N * I, 3);
    const W = lin.weight.data;
    const b = lin.bias!.data;
    const y = lin.forward(x);
    const ref = new Float64Array(N * O);
    for (let n = 0; n < N; n++)
      for (let o = 0; o < O; o++) {
        let s = b[o];
        for (let i = 0; i < I; i++) s += x[n * I + i] * W[o * I + i];
        ref[n * O + o] = s;
      }
    expectClose(y, ref, 1e-6, 'y');

    const dy = randn(N * O, 4);
    lin.weight.grad.fill(1);
    lin.bias!.grad.fill(-1);
    const dx = lin.backward(dy)!;
    const dxRef = new Float64Array(N * I);
    const dWRef = new Float64Array(O * I).fill(1);
    const dbRef = new Float64Array(O).fill(-1);
    for (let n = 0; n < N; n++)
      for (let o = 0; o < O; o++) {
        dbRef[o] += dy[n * O + o];
        for (let i = 0; i < I; i++) {
          dxRef[n * I + i] += dy[n * O + o] * W[o * I + i];
          dWRef[o * I + i] += dy[n * O + o] * x[n * I + i];
        }
      }
    expectClose(dx, dxRef, 1e-6, 'dx');
    expectClose(lin.weight.grad, dWRef, 1e-6, 'dW');
    expectClose(lin.bias!.grad, dbRef, 1e-6, 'db');
    expect(lin.backward(dy, false)).toBeNull();
    expect(lin.describe()).toBe('Linear(5 -> 3)');
  });

  it('without bias is x W^T', () => {
    const lin = new Linear(2, 2, { bias: false });
    lin.weight.data.set([1, 2, 3, 4]);
    expect(Array.from(lin.forward(Float32Array.from([1, 1, 0, -1])))).toEqual([3, 7, -2, -4]);
    expect(lin.parameters().length).toBe(1);
    expect(lin.describe()).toBe('Linear(2 -> 2, no bias)');
  });
});

describe('SoftmaxCrossEntropy', () => {
  it('gives the mean negative log-likelihood and its gradient, skipping ignored rows', () => {
    const V = 4;
    const logits = randn(3 * V, 5, 2);
    const targets = Int32Array.from([2, -1, 0]);
    const xent = new SoftmaxCrossEntropy();
    const { loss, count } = xent.forward(logits, targets, V);
    expect(count).toBe(2);
    let sum = 0;
    const dRef = new Float64Array(3 * V);
    for (const n of [0, 2]) {
      const row = Array.from(logits.subarray(n * V, (n + 1) * V));
      const m = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
      sum += -(row[targets[n]] - m - Math.log(z));
      row.forEach(
        (v, k) => (dRef[n * V + k] = (Math.exp(v - m) / z - (k === targets[n] ? 1 : 0)) / 2),
      );
    }
    expect(loss).toBeCloseTo(sum / 2, 5);
    expectClose(xent.backward(), dRef, 1e-6, 'dlogits');
  });
});

describe('RecurrentStack forward against a float64 reference', () => {
  it('one LSTM step for B=2, H=3 written out by hand', () => {
    // I=2, H=3, T=1, B=2: every gate spelled out, no loops over gates.
    const lstm = new LSTM({ inputSize: 2, hiddenSize: 3, seed: 5 });
    const w = lstm.layerWeights(0);
    const x = Float32Array.from([0.5, -1, 2, 0.25]);
    const h0 = Float32Array.from([0.1, -0.2, 0.3, 0, 0.5, -0.5]);
    const c0 = Float32Array.from([1, -1, 0.5, 0.2, 0, -0.3]);
    const { output, state } = lstm.forward(x, { steps: 1, batch: 2, state: { h: h0, c: c0 } });
    const row = (m: Float32Array, r: number, v: ArrayLike<number>, n: number) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[r * n + k] * v[k];
      return s;
    };
    for (let b = 0; b < 2; b++) {
      const xb = x.subarray(b * 2, b * 2 + 2);
      const hb = h0.subarray(b * 3, b * 3 + 3);
      for (let j = 0; j < 3; j++) {
        const pre = (gate: number) =>
          row(w.weightIh, gate * 3 + j, xb, 2) +
          w.biasIh[gate * 3 + j] +
          row(w.weightHh, gate * 3 + j, hb, 3) +
          w.biasHh[gate * 3 + j];
        const i = sigmoid(pre(0));
        const f = sigmoid(pre(1));
        const g = Math.tanh(pre(2));
        const o = sigmoid(pre(3));
        const c = f * c0[b * 3 + j] + i * g;
        const h = o * Math.tanh(c);
        expect(state.c![b * 3 + j]).toBeCloseTo(c, 6);
        expect(state.h[b * 3 + j]).toBeCloseTo(h, 6);
        expect(output[b * 3 + j]).toBeCloseTo(h, 6);
      }
    }
  });

  describe.each(CELLS)('%s', (cell) => {
    it.each([
      [1, false],
      [3, false],
      [3, true],
    ])('numLayers=%i residual=%s: outputs, states and shapes match', (L, residual) => {
      const I = 4;
      const H = 3;
      const T = 5;
      const B = 2;
      const stack = makeStack(cell, {
        inputSize: I,
        hiddenSize: H,
        numLayers: L,
        residual,
        seed: 9,
      });
      const x = randn(T * B * I, 10);
      const h0 = randn(L * B * H, 11, 0.5);
      const c0 = cell === 'lstm' ? randn(L * B * H, 12, 0.5) : undefined;
      const state: RecurrentState = c0 ? { h: h0, c: c0 } : { h: h0 };
      const { output, state: final } = stack.forward(x, { steps: T, batch: B, state });
      expect(output.length).toBe(T * B * H);
      expect(final.h.length).toBe(L * B * H);
      const ref = referenceStack(cell, layersOf(stack), I, H, x, T, B, { h0, c0, residual });
      expectClose(output, ref.y, 1e-5, 'y');
      expectClose(final.h, ref.hT, 1e-5, 'hT');
      if (cell === 'lstm') expectClose(final.c!, ref.cT, 1e-5, 'cT');
      else expect(final.c).toBeUndefined();
      // No state is a zero state.
      const fromZero = stack.forward(x, { steps: T, batch: B }).output.slice();
      expect(fromZero).toEqual(
        stack.forward(x, { steps: T, batch: B, state: stack.zeroState(B) }).output,
      );
      expectClose(
        fromZero,
        referenceStack(cell, layersOf(stack), I, H, x, T, B, { residual }).y,
        1e-5,
      );
    });
  });
});

describe('residual connections', () => {
  it.each(['lstm', 'gru', 'rnn_tanh'] as NativeCell[])(
    '%s: a 2-layer residual stack outputs the plain stack plus layer 0, with the same states',
    (cell) => {
      const I = 3;
      const H = 4;
      const T = 4;
      const B = 3;
      const opts = { inputSize: I, hiddenSize: H, numLayers: 2, seed: 21 };
      const res = makeStack(cell, { ...opts, residual: true });
      const plain = makeStack(cell, opts);
      const first = makeStack(cell, { ...opts, numLayers: 1 });
      plain.weights.data.set(res.weights.data);
      first.weights.data.set(res.weights.data.subarray(0, first.weights.size));
      const x = randn(T * B * I, 22);
      const r = res.forward(x, { steps: T, batch: B });
      const p = plain.forward(x, { steps: T, batch: B });
      const f = first.forward(x, { steps: T, batch: B });
      expectClose(
        r.output,
        p.output.map((v, i) => v + f.output[i]),
        1e-6,
        'residual output',
      );
      expect(maxAbs(f.output)).toBeGreaterThan(0.05);
      expect(r.state.h).toEqual(p.state.h);
      expect(res.describe()).toMatch(/residual/);
    },
  );
});

describe('ONNX weight layout', () => {
  /** A stack whose weights are their own flat indices, so every block is recognisable. */
  function indexed(cell: NativeCell, L: number) {
    const stack = makeStack(cell, { inputSize: 2, hiddenSize: 3, numLayers: L, seed: 1 });
    stack.weights.data.forEach((_, i, a) => (a[i] = i));
    return stack;
  }
  const perms: [NativeCell, number[]][] = [
    ['lstm', [0, 3, 1, 2]], // ONNX i, o, f, c  <-  PyTorch i, f, g, o
    ['gru', [1, 0, 2]], // ONNX z, r, h  <-  PyTorch r, z, n
    ['rnn_tanh', [0]],
  ];

  it.each(perms)('%s: W, R and B are PyTorch blocks in ONNX order', (cell, order) => {
    const stack = indexed(cell, 2);
    const H = 3;
    const G = order.length;
    for (let l = 0; l < 2; l++) {
      const I = l === 0 ? 2 : H;
      const w = stack.layerWeights(l);
      const { W, R, B } = stack.onnxWeights(l);
      expect(W.length).toBe(G * H * I);
      expect(R.length).toBe(G * H * H);
      expect(B.length).toBe(2 * G * H);
      order.forEach((from, to) => {
        const block = (a: Float32Array, n: number, k: number) =>
          Array.from(a.subarray(k * n, (k + 1) * n));
        expect(block(W, H * I, to), `W block ${to}`).toEqual(block(w.weightIh, H * I, from));
        expect(block(R, H * H, to), `R block ${to}`).toEqual(block(w.weightHh, H * H, from));
        expect(block(B, H, to), `Wb block ${to}`).toEqual(block(w.biasIh, H, from));
        expect(block(B, H, G + to), `Rb block ${to}`).toEqual(block(w.biasHh, H, from));
      });
    }
    // The LSTM's ONNX input gate is PyTorch's input gate, its output gate PyTorch's last block.
    if (cell === 'lstm') {
      const { W } = stack.onnxWeights(0);
      expect(W[0]).toBe(0);
      expect(W[H * 2]).toBe(3 * H * 2);
    }
  });

  /** One layer run by the ONNX operator definitions (LSTM iofc; GRU zrh, linear_before_reset=1). */
  function onnxLayer(
    cell: NativeCell,
    { W, R, B: bias }: { W: Float32Array; R: Float32Array; B: Float32Array },
    x: ArrayLike<number>,
    T: number,
    B: number,
    I: number,
    H: number,
  ) {
    const G = cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1;
    const Wb = (g: number, j: number) => bias[g * H + j];
    const Rb = (g: number, j: number) => bias[G * H + g * H + j];
    const xw = (g: number, j: number, t: number, b: number) => {
      let s = 0;
      for (let k = 0; k < I; k++) s += x[(t * B + b) * I + k] * W[(g * H + j) * I + k];
      return s;
    };
    const hr = (g: number, j: number, h: Float64Array, b: number) => {
      let s = 0;
      for (let k = 0; k < H; k++) s += h[b * H + k] * R[(g * H + j) * H + k];
      return s;
    };
    const y = new Float64Array(T * B * H);
    let h = new Float64Array(B * H);
    const c = new Float64Array(B * H);
    for (let t = 0; t < T; t++) {
      const next = new Float64Array(B * H);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const pre = (g: number) => xw(g, j, t, b) + hr(g, j, h, b) + Wb(g, j) + Rb(g, j);
          if (cell === 'lstm') {
            const it = sigmoid(pre(0));
            const ot = sigmoid(pre(1));
            const ft = sigmoid(pre(2));
            const ct = Math.tanh(pre(3));
            c[b * H + j] = ft * c[b * H + j] + it * ct;
            next[b * H + j] = ot * Math.tanh(c[b * H + j]);
          } else if (cell === 'gru') {
            const zt = sigmoid(pre(0));
            const rt = sigmoid(pre(1));
            const ht = Math.tanh(xw(2, j, t, b) + rt * (hr(2, j, h, b) + Rb(2, j)) + Wb(2, j));
            next[b * H + j] = (1 - zt) * ht + zt * h[b * H + j];
          } else {
            next[b * H + j] = Math.tanh(pre(0));
          }
        }
      h = next;
      y.set(h, t * B * H);
    }
    return { y, h };
  }

  it.each(['lstm', 'gru', 'rnn_tanh'] as NativeCell[])(
    '%s: the ONNX operator equations on onnxWeights reproduce the stack',
    (cell) => {
      const I = 3;
      const H = 4;
      const T = 4;
      const B = 2;
      const stack = makeStack(cell, { inputSize: I, hiddenSize: H, numLayers: 2, seed: 31 });
      const x = randn(T * B * I, 32);
      const { output, state } = stack.forward(x, { steps: T, batch: B });
      const l0 = onnxLayer(cell, stack.onnxWeights(0), x, T, B, I, H);
      const l1 = onnxLayer(cell, stack.onnxWeights(1), l0.y, T, B, H, H);
      expectClose(output, l1.y, 1e-5, 'y');
      expectClose(state.h.subarray(0, B * H), l0.h, 1e-5, 'hT layer 0');
      expectClose(state.h.subarray(B * H), l1.h, 1e-5, 'hT layer 1');
    },
  );
});

describe('padded batches', () => {
  it.each(CELLS)('%s: each row of a padded batch equals that row run alone', (cell) => {
    const I = 3;
    const H = 4;
    const T = 5;
    const B = 3;
    const L = 2;
    const lengths = Int32Array.from([5, 2, 1]);
    const stack = makeStack(cell, { inputSize: I, hiddenSize: H, numLayers: L, seed: 41 });
    const x = randn(T * B * I, 42);
    const h0 = randn(L * B * H, 43, 0.5);
    const c0 = cell === 'lstm' ? randn(L * B * H, 44, 0.5) : undefined;
    const dy = randn(T * B * H, 45);
    const dhT = randn(L * B * H, 46);
    const dcT = c0 && randn(L * B * H, 47);
    const state = (h: Float32Array, c?: Float32Array): RecurrentState => (c ? { h, c } : { h });

    stack.zeroGrad();
    const batch = stack.forward(x, {
      steps: T,
      batch: B,
      lengths,
      state: state(h0, c0),
      training: true,
    });
    const y = batch.output.slice();
    const hT = batch.state.h.slice();
    const cT = batch.state.c?.slice();
    const back = stack.backward(dy, state(dhT, dcT));
    const dx = back.dx.slice();
    const dh0 = back.dState.h.slice();
    const dc0 = back.dState.c?.slice();
    const gradBatch = stack.weights.grad.slice();

    const sumRowGrads = new Float64Array(stack.weights.size);
    for (let b = 0; b < B; b++) {
      const n = lengths[b];
      const pick = (a: Float32Array, rows: number, width: number, len: number) => {
        const out = new Float32Array(len * width);
        for (let r = 0; r < len; r++)
          out.set(a.subarray((r * rows + b) * width, (r * rows + b + 1) * width), r * width);
        return out;
      };
      const xb = pick(x, B, I, n);
      const sb = state(pick(h0, B, H, L), c0 && pick(c0, B, H, L));
      stack.zeroGrad();
      const alone = stack.forward(xb, { steps: n, batch: 1, state: sb, training: true });
      for (let t = 0; t < T; t++) {
        const got = y.subarray((t * B + b) * H, (t * B + b + 1) * H);
        if (t < n)
          expectClose(got, alone.output.subarray(t * H, (t + 1) * H), 1e-6, `y[${t}, ${b}]`);
        else expect(maxAbs(got), `y[${t}, ${b}] is padding`).toBe(0);
      }
      expectClose(pick(hT, B, H, L), alone.state.h, 1e-6, `hT row ${b}`);
      if (cT) expectClose(pick(cT, B, H, L), alone.state.c!, 1e-6, `cT row ${b}`);
      const r = stack.backward(
        pick(dy, B, H, n),
        state(pick(dhT, B, H, L), dcT && pick(dcT, B, H, L)),
      );
      expectClose(pick(dx, B, I, n), r.dx, 1e-5, `dx row ${b}`);
      for (let t = n; t < T; t++)
        expect(
          maxAbs(dx.subarray((t * B + b) * I, (t * B + b + 1) * I)),
          `dx[${t}, ${b}] is padding`,
        ).toBe(0);
      expectClose(pick(dh0, B, H, L), r.dState.h, 1e-5, `dh0 row ${b}`);
      if (dc0) expectClose(pick(dc0, B, H, L), r.dState.c!, 1e-5, `dc0 row ${b}`);
      stack.weights.grad.forEach((g, i) => (sumRowGrads[i] += g));
    }
    expectClose(gradBatch, sumRowGrads, 1e-5, 'weight gradients: batch vs sum of rows');
  });
});

describe('dropout between layers', () => {
  const I = 4;
  const H = 6;
  const T = 5;
  const B = 3;
  const x = randn(T * B * I, 51);
  const opts = { inputSize: I, hiddenSize: H, numLayers: 3, seed: 52 };

  it('is deterministic for a seed, changes the output in training and is off in inference', () => {
    const a = new LSTM({ ...opts, dropout: 0.5 });
    const b = new LSTM({ ...opts, dropout: 0.5 });
    const none = new LSTM(opts);
    expect(b.weights.data).toEqual(a.weights.data);
    expect(none.weights.data).toEqual(a.weights.data);
    const run = (s: RecurrentStack, training: boolean) =>
      s.forward(x, { steps: T, batch: B, training }).output.slice();
    const a1 = run(a, true);
    const b1 = run(b, true);
    const clean = run(none, true);
    expect(b1).toEqual(a1);
    expect(maxAbs(a1.map((v, i) => v - clean[i]))).toBeGreaterThan(1e-3);
    // The next training call draws fresh masks, the same for both models.
    const a2 = run(a, true);
    expect(run(b, true)).toEqual(a2);
    expect(a2).not.toEqual(a1);
    // Inference: no dropout at all.
    expect(run(a, false)).toEqual(run(none, false));
    expect(run(none, false)).toEqual(clean);
    expect(a.describe()).toBe('LSTM(4 -> 6, numLayers=3, dropout=0.5)');
  });

  it('does nothing to a single layer (it acts between layers only)', () => {
    const one = new GRU({ ...opts, numLayers: 1, dropout: 0.5 });
    const plain = new GRU({ ...opts, numLayers: 1 });
    expect(one.forward(x, { steps: T, batch: B, training: true }).output).toEqual(
      plain.forward(x, { steps: T, batch: B, training: true }).output,
    );
  });

  it('backward uses the same masks as forward (finite differences at a fixed seed)', () => {
    const stack = new GRU({ ...opts, dropout: 0.4 });
    const shape = {
      cell: stack.cellName,
      T,
      B,
      I,
      H,
      L: 3,
      dropout: 0.4,
      residual: false,
      training: true,
      seed: 12345,
    };
    const ws = new Float32Array(native.stackWorkspaceSize(shape));
    const y = new Float32Array(T * B * H);
    const hT = new Float32Array(3 * B * H);
    const gy = randn(T * B * H, 53);
    const loss = (xs: Float32Array) => {
      native.stackForward(shape, stack.weights.data, xs, null, null, null, y, hT, null, ws);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * gy[i];
      return s;
    };
    const base = loss(x);
    const noDrop = new Float32Array(T * B * H);
    native.stackForward(
      { ...shape, dropout: 0 },
      stack.weights.data,
      x,
      null,
      null,
      null,
      noDrop,
      hT,
      null,
      new Float32Array(native.stackWorkspaceSize({ ...shape, dropout: 0 })),
    );
    expect(maxAbs(noDrop.map((v, i) => v - y[i]))).toBeGreaterThan(1e-3);
    loss(x);
    const dx = new Float32Array(T * B * I);
    const dparams = new Float32Array(stack.weights.size);
    native.stackBackward(
      shape,
      stack.weights.data,
      x,
      null,
      null,
      null,
      ws,
      gy,
      null,
      null,
      dx,
      null,
      null,
      dparams,
    );
    const eps = 1e-2;
    for (const k of [0, 7, 22, 31, 45, 59]) {
      const xp = x.slice();
      xp[k] += eps;
      const up = loss(xp);
      xp[k] -= 2 * eps;
      const down = loss(xp);
      const fd = (up - down) / (2 * eps);
      expect(
        Math.abs(fd - dx[k]),
        `dx[${k}]: finite difference ${fd}, backward ${dx[k]}`,
      ).toBeLessThan(2e-3 * (1 + Math.abs(fd)));
    }
    expect(base).toBe(loss(x));
  });
});

describe('describe() and summary()', () => {
  it('name layers and their options', () => {
    expect(new RNN({ inputSize: 5, hiddenSize: 7 }).describe()).toBe('RNN(5 -> 7)');
    expect(
      new RNN({ inputSize: 5, hiddenSize: 7, nonlinearity: 'relu', numLayers: 2 }).describe(),
    ).toBe('RNN(5 -> 7, numLayers=2, relu)');
    expect(new GRU({ inputSize: 2, hiddenSize: 3, residual: true, numLayers: 2 }).toString()).toBe(
      'GRU(2 -> 3, numLayers=2, residual)',
    );
    const lstm = new LSTM({ inputSize: 5, hiddenSize: 7, numLayers: 2 });
    // PyTorch's count: 4H(I + H + 2) + 4H(H + H + 2).
    expect(lstm.numParameters()).toBe(4 * 7 * (5 + 7 + 2) + 4 * 7 * (7 + 7 + 2));
    expect(new GRU({ inputSize: 5, hiddenSize: 7 }).numParameters()).toBe(3 * 7 * (5 + 7 + 2));
  });

  it('LanguageModel.summary lists every layer with its parameter count and the total', () => {
    const m = new LanguageModel({
      vocabSize: 11,
      embeddingSize: 6,
      hiddenSize: 7,
      numLayers: 2,
      seed: 1,
    });
    const s = m.summary();
    const lines = s.split('\n');
    expect(lines[0]).toBe('LanguageModel');
    expect(lines[1]).toMatch(/^ {2}embedding +Embedding\(11, 6\) +66$/);
    // LSTM: 4H(E + H + 2) + 4H(2H + 2) = 420 + 448.
    expect(lines[2]).toMatch(/^ {2}rnn +LSTM\(6 -> 7, numLayers=2\) +868$/);
    expect(lines[3]).toMatch(/^ {2}decoder +Linear\(7 -> 11\) +88$/);
    expect(lines[4]).toBe('  total parameters: 1,022');
    expect(lines.length).toBe(5);
    expect(m.numParameters()).toBe(66 + 868 + 88);
    expect(m.describe()).toBe(
      'LanguageModel(Embedding(11, 6), LSTM(6 -> 7, numLayers=2), Linear(7 -> 11))',
    );
  });
});

describe('optimizers', () => {
  function param(values: number[], grads: number[]): Parameter {
    const p = new Parameter('p', [values.length]);
    p.data.set(values);
    p.grad.set(grads);
    return p;
  }
  const p0 = [0.5, -1.5, 2, 0.01];
  const g1 = [0.1, -0.2, 0.3, 0];
  const g2 = [-0.05, 0.4, 0.3, 1e-3];

  it.each([true, false])(
    'Adam (decoupled weight decay: %s) follows torch.optim formulas for two steps',
    (decoupled) => {
      const lr = 0.01;
      const beta1 = 0.8;
      const beta2 = 0.95;
      const eps = 1e-6;
      const wd = 0.1;
      const p = param(p0, g1);
      const opt = new Adam([p], { lr, beta1, beta2, eps, weightDecay: wd, decoupled });
      const ref = [...p0];
      const m = [0, 0, 0, 0];
      const v = [0, 0, 0, 0];
      [g1, g2].forEach((grads, s) => {
        const step = s + 1;
        p.grad.set(grads);
        opt.step();
        for (let i = 0; i < 4; i++) {
          let g = grads[i];
          if (decoupled) ref[i] *= 1 - lr * wd;
          else g += wd * ref[i];
          m[i] = beta1 * m[i] + (1 - beta1) * g;
          v[i] = beta2 * v[i] + (1 - beta2) * g * g;
          const mhat = m[i] / (1 - beta1 ** step);
          const vhat = v[i] / (1 - beta2 ** step);
          ref[i] -= (lr * mhat) / (Math.sqrt(vhat) + eps);
        }
        expectClose(p.data, ref, 2e-6, `params after step ${step}`);
      });
      expect(opt.state().step).toBe(2);
      expectClose(opt.state().tensors['m.0'], m, 1e-6, 'm');
      expectClose(opt.state().tensors['v.0'], v, 1e-6, 'v');
    },
  );

  it.each([false, true])(
    'SGD with momentum (nesterov: %s) follows torch.optim formulas for two steps',
    (nesterov) => {
      const lr = 0.1;
      const mu = 0.9;
      const wd = 0.01;
      const p = param(p0, g1);
      const opt = new SGD([p], { lr, momentum: mu, weightDecay: wd, nesterov });
      const ref = [...p0];
      const buf = [0, 0, 0, 0];
      [g1, g2].forEach((grads, s) => {
        p.grad.set(grads);
        opt.step();
        for (let i = 0; i < 4; i++) {
          const g = grads[i] + wd * ref[i];
          buf[i] = s === 0 ? g : mu * buf[i] + g;
          ref[i] -= lr * (nesterov ? g + mu * buf[i] : buf[i]);
        }
        expectClose(p.data, ref, 1e-6, `params after step ${s + 1}`);
      });
    },
  );

  it('plain SGD is p -= lr * g', () => {
    const p = param(p0, g1);
    new SGD([p], { lr: 0.5 }).step();
    expectClose(
      p.data,
      p0.map((v, i) => v - 0.5 * g1[i]),
      1e-7,
    );
  });

  it('clipGradNorm scales all gradients to the global norm, and only when above it', () => {
    const a = param([0, 0], [3, 0]);
    const b = param([0, 0, 0], [0, 4, 0]);
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(5, 6);
    expect(Array.from(a.grad)).toEqual([3, 0]);
    expect(clipGradNorm([a, b], 1)).toBeCloseTo(5, 6);
    expectClose(a.grad, [0.6, 0], 1e-6, 'a.grad');
    expectClose(b.grad, [0, 0.8, 0], 1e-6, 'b.grad');
    expect(native.globalNorm([a.grad, b.grad])).toBeCloseTo(1, 6);
  });
});

describe('LanguageModel weight tying', () => {
  const V = 9;
  const H = 5;
  const T = 4;
  const B = 2;
  const inputs = Int32Array.from({ length: T * B }, (_, i) => (i * 5 + 1) % V);
  const targets = Int32Array.from({ length: T * B }, (_, i) => (i * 7 + 3) % V);

  it.each(['lstm', 'gru'] as CellType[])('%s: the decoder uses the embedding matrix', (cell) => {
    const tied = new LanguageModel({
      vocabSize: V,
      hiddenSize: H,
      cell,
      tieWeights: true,
      seed: 61,
    });
    expect(tied.decoder.weight).toBe(tied.embedding.weight);
    expect(tied.namedParameters().map(([n]) => n)).toEqual([
      'embedding.weight',
      'rnn.weights',
      'decoder.bias',
    ]);
    expect(tied.numParameters()).toBe(V * H + tied.rnn.numParameters() + V);
    expect(tied.summary()).toMatch(/weight tied to embedding/);
    const { logits } = tied.forward({ ids: inputs, steps: T, batch: B });
    const h = tied.rnn.forward(tied.embedding.forward(inputs), { steps: T, batch: B }).output;
    const E = tied.embedding.weight.data;
    const bias = tied.decoder.bias!.data;
    const ref = new Float64Array(T * B * V);
    for (let n = 0; n < T * B; n++)
      for (let v = 0; v < V; v++) {
        let s = bias[v];
        for (let j = 0; j < H; j++) s += h[n * H + j] * E[v * H + j];
        ref[n * V + v] = s;
      }
    expectClose(logits, ref, 1e-5, 'logits');
  });

  it.each(['lstm', 'rnn'] as CellType[])(
    '%s: the shared matrix gets the sum of both gradients',
    (cell) => {
      const tied = new LanguageModel({
        vocabSize: V,
        hiddenSize: H,
        cell,
        tieWeights: true,
        seed: 62,
      });
      const untied = new LanguageModel({ vocabSize: V, hiddenSize: H, cell, seed: 63 });
      untied.embedding.weight.data.set(tied.embedding.weight.data);
      untied.decoder.weight.data.set(tied.embedding.weight.data);
      untied.decoder.bias!.data.set(tied.decoder.bias!.data);
      untied.rnn.weights.data.set(tied.rnn.weights.data);
      tied.zeroGrad();
      untied.zeroGrad();
      const a = tied.lossAndGradients(inputs, targets, T, B);
      const b = untied.lossAndGradients(inputs, targets, T, B);
      expect(a.loss).toBeCloseTo(b.loss, 6);
      const fromEmbedding = untied.embedding.weight.grad;
      const fromDecoder = untied.decoder.weight.grad;
      expect(maxAbs(fromEmbedding)).toBeGreaterThan(1e-4);
      expect(maxAbs(fromDecoder)).toBeGreaterThan(1e-4);
      expectClose(
        tied.embedding.weight.grad,
        fromEmbedding.map((g, i) => g + fromDecoder[i]),
        1e-5,
        'tied gradient',
      );
      expectClose(tied.rnn.weights.grad, untied.rnn.weights.grad, 1e-5, 'rnn gradient');
    },
  );
});

describe('GEMM: OpenBLAS and the built-in kernel agree through the addon', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 5, 7],
    [17, 33, 9],
    [64, 64, 64],
    [70, 13, 129],
    [5, 100, 2],
    // Large enough for the built-in GEMM to split its rows over threads.
    [300, 130, 110],
    // Few rows and a large B: their columns split over threads where OpenBLAS runs one.
    [5, 700, 400],
  ];
  const { gemm: backend, blasCore, builtinVectorBits, products } = info();

  it(`addon reports its GEMM backend (${backend}, products on ${products})`, () => {
    expect(['openblas', 'builtin']).toContain(backend);
    expect([128, 256, 512]).toContain(builtinVectorBits);
    expect(['openblas', 'builtin']).toContain(products);
    if (backend === 'builtin') {
      expect(blasCore).toBe('');
      expect(products).toBe('builtin');
    } else {
      expect(blasCore.length).toBeGreaterThan(0);
      // The built-in kernel takes the products only where it is AVX-512 and OpenBLAS's is not.
      const avx512Core = /skylakex|cooperlake|sapphirerapids/i.test(blasCore);
      expect(products).toBe(builtinVectorBits === 512 && !avx512Core ? 'builtin' : 'openblas');
    }
  });

  describe.each(shapes)('M=%i N=%i K=%i', (M, N, K) => {
    it.each([
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ])('transA=%s transB=%s', async (transA, transB) => {
      const A = randn(M * K, M * 1000 + K);
      const Bm = randn(K * N, N * 1000 + K + 1);
      const C0 = randn(M * N, 7);
      const alpha = 0.75;
      const beta = -0.5;
      const a = (i: number, k: number) => (transA ? A[k * M + i] : A[i * K + k]);
      const b = (k: number, j: number) => (transB ? Bm[j * K + k] : Bm[k * N + j]);
      const ref = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a(i, k) * b(k, j);
          ref[i * N + j] = alpha * s + beta * C0[i * N + j];
        }
      const shape = { transA, transB, M, N, K, alpha, beta };
      const run = (kernel: 'auto' | 'blas' | 'builtin') => {
        const C = C0.slice();
        native.gemm({ ...shape, kernel }, A, Bm, C);
        return C;
      };
      const tol = 1e-6 * Math.sqrt(K) * 4;
      const blas = run('blas');
      const builtin = run('builtin');
      expectClose(blas, ref, tol, 'BLAS vs float64');
      expectClose(builtin, ref, tol, 'built-in GEMM vs float64');
      expectClose(builtin, blas, tol, 'built-in vs BLAS');
      // 'auto' is one of the two: the built-in kernel where it takes the product (16 rows or more).
      expect(run('auto')).toEqual(products === 'builtin' && M >= 16 ? builtin : blas);
      const viaAsync = C0.slice();
      await native.gemmAsync({ ...shape, kernel: 'builtin' }, A, Bm, viaAsync);
      expect(viaAsync).toEqual(builtin);
      // The built-in GEMM's rows come out the same however many threads share them.
      const threads = info().threads;
      try {
        native.setThreads(threads === 1 ? 2 : 1);
        expect(run('builtin')).toEqual(builtin);
      } finally {
        native.setThreads(threads);
      }
    });
  });
});
