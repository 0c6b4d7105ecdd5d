// LanguageModel.evaluate against the same loss computed here from one forward pass over the
// whole text: every next-token prediction counts, whatever the window and batch sizes.
import { describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel } from '../../lib/index';

/** Summed negative log-likelihood of each next token of `ids`, from logits [T, 1, V] of one row. */
function nll(logits: Float32Array, ids: Int32Array, V: number): number {
  let sum = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
    const logSum = Math.log(row.reduce((a, b) => a + Math.exp(b - max), 0)) + max;
    sum += logSum - row[ids[t + 1]];
  }
  return sum;
}

/**
 * The mean loss evaluate documents: the predictions cut into `rows` contiguous pieces (lengths
 * differing by at most one, longer ones first), each run from a zero state in one forward pass.
 */
function reference(model: LanguageModel, ids: Int32Array, rows: number): number {
  const n = ids.length - 1;
  let sum = 0;
  let start = 0;
  for (let b = 0; b < rows; b++) {
    const length = Math.floor(n / rows) + (b < n % rows ? 1 : 0);
    const piece = ids.slice(start, start + length + 1);
    const { logits } = model.forward({ ids: piece.subarray(0, length), steps: length, batch: 1 });
    sum += nll(logits, piece, model.spec.vocabSize);
    start += length;
  }
  expect(start).toBe(n);
  return sum / n;
}

describe('LanguageModel.evaluate', () => {
  const text = 'the quick brown fox jumps over the lazy dog; '.repeat(7) + 'and the tail';
  const tokenizer = CharTokenizer.fromText(text);

  for (const cell of ['lstm', 'gru'] as const) {
    it(`${cell}: scores all ${text.length - 1} predictions, tail included`, () => {
      const model = new LanguageModel({ tokenizer, cell, hiddenSize: 24, numLayers: 2, seed: 5 });
      const ids = tokenizer.encode(text);
      // [seqLength, rows]: windows and rows that leave a tail (326 predictions), and one row.
      for (const [seqLength, rows] of [
        [13, 25],
        [50, 6],
        [100, 3],
        [1000, 1],
      ]) {
        const want = reference(model, ids, rows);
        const r = model.evaluate(text, { seqLength });
        expect(r.tokens).toBe(ids.length - 1);
        expect(r.loss).toBeCloseTo(want, 4);
        expect(r.perplexity).toBeCloseTo(Math.exp(want), 3);
      }
    });
  }

  it('needs two tokens', () => {
    const model = new LanguageModel({ tokenizer, hiddenSize: 8, seed: 1 });
    expect(() => model.evaluate('t')).toThrow(/at least two tokens/);
  });
});
