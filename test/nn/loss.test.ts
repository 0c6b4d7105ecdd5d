// SoftmaxCrossEntropy against a float64 reference.
import { describe, expect, it } from 'vitest';

import { SoftmaxCrossEntropy } from '../../lib/index';
import { randn, expectClose } from '../helpers/reference';

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
