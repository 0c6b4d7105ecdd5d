// Recurrent stacks (RNN, LSTM, GRU) against a float64 reference: stacked, residual, padded,
// with dropout between layers, and the ONNX weight layout.
import { describe, expect, it } from 'vitest';

import { GRU, LSTM, RecurrentStack, type RecurrentState } from '../../lib/index';
import { native } from '../../lib/core/native';
import {
  randn,
  expectClose,
  maxAbs,
  sigmoid,
  type NativeCell,
  referenceStack,
  layersOf,
  makeStack,
  CELLS,
} from '../helpers/reference';

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
      native.stackForward({
        shape,
        params: stack.weights.data,
        x: xs,
        lengths: null,
        h0: null,
        c0: null,
        y,
        hT,
        cT: null,
        ws,
      });
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * gy[i];
      return s;
    };
    const base = loss(x);
    const noDrop = new Float32Array(T * B * H);
    native.stackForward({
      shape: { ...shape, dropout: 0 },
      params: stack.weights.data,
      x,
      lengths: null,
      h0: null,
      c0: null,
      y: noDrop,
      hT,
      cT: null,
      ws: new Float32Array(native.stackWorkspaceSize({ ...shape, dropout: 0 })),
    });
    expect(maxAbs(noDrop.map((v, i) => v - y[i]))).toBeGreaterThan(1e-3);
    loss(x);
    const dx = new Float32Array(T * B * I);
    const dparams = new Float32Array(stack.weights.size);
    native.stackBackward({
      shape,
      params: stack.weights.data,
      x,
      lengths: null,
      h0: null,
      c0: null,
      ws,
      dy: gy,
      dhT: null,
      dcT: null,
      dx,
      dh0: null,
      dc0: null,
      dparams,
    });
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
