// describe() and summary() of layers and models.
import { describe, expect, it } from 'vitest';

import { GRU, LanguageModel, LSTM, RNN } from '../../lib/index';

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
