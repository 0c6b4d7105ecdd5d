// Embedding against a plain lookup and its scatter-add gradient.
import { describe, expect, it } from 'vitest';

import { Embedding, Random } from '../../lib/index';

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
