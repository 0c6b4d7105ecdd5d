// Linear against a float64 product, forward and backward.
import { describe, expect, it } from 'vitest';

import { Linear, Random } from '../../lib/index';
import { randn, expectClose } from '../helpers/reference';

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
