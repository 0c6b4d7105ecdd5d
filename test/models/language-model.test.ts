// Weight tying in the language-model network.
import { describe, expect, it } from 'vitest';

import { LanguageModel, type CellType } from '../../lib/index';
import { expectClose, maxAbs } from '../helpers/reference';

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
