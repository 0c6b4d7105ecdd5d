// Token log-probabilities (lib/decode/logprobs.ts) on both serving backends, against the logits
// PyTorch computed for the same weights (test/fixtures/torch-lm*.safetensors, written by
// scripts/make-torch-fixtures.py), normalised here in float64.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { exportOnnx, LanguageModel, type LanguageModelConfig } from '../../lib/index';
import { readSafetensors, type Loaded } from '../../lib/checkpoint/safetensors';
import { scoresFromLogits, type TokenScorer } from '../../lib/decode/logprobs';
import { NativeRounds } from '../../lib/decode/rounds';
import { OnnxRounds } from '../../lib/onnx/rounds';
import { tmpDir } from '../helpers/tmp';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const dir = tmpDir();
const K = 4;

let expected: Loaded;
let model: LanguageModel;
let tokens: Int32Array;
/** PyTorch's logits of row 0, [T, V]. */
let torchLogits: Float64Array;
let V: number;

beforeAll(async () => {
  expected = await readSafetensors(path.join(FIXTURES, 'torch-lm-expected.safetensors'));
  const config = JSON.parse(expected.metadata.config) as LanguageModelConfig;
  model = await LanguageModel.fromPyTorch(path.join(FIXTURES, 'torch-lm.safetensors'), config);
  const [T, B, vocab] = expected.tensors.logits.shape;
  V = vocab;
  const ids = expected.tensors.ids.data as Int32Array;
  const logits = expected.tensors.logits.data as Float32Array;
  tokens = Int32Array.from({ length: T }, (_, t) => ids[t * B]);
  torchLogits = Float64Array.from({ length: T * V }, (_, i) => {
    const t = Math.floor(i / V);
    return logits[t * B * V + (i % V)];
  });
});

/** log_softmax of PyTorch's row t, in float64. */
function logSoftmax(t: number): number[] {
  const row = Array.from(torchLogits.subarray(t * V, (t + 1) * V));
  const max = Math.max(...row);
  const norm = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return row.map((v) => v - norm);
}

function checkScores(scorer: TokenScorer) {
  return async () => {
    const s = await scorer.score(tokens, K);
    expect(s.logprobs.length).toBe(tokens.length - 1);
    for (let t = 0; t + 1 < tokens.length; t++) {
      const want = logSoftmax(t);
      expect(s.logprobs[t]).toBeCloseTo(want[tokens[t + 1]], 4);
      const order = want.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
      for (let j = 0; j < K; j++) {
        expect(s.top[t * K + j], `position ${t}, alternative ${j}`).toBe(order[j][1]);
        expect(s.topLogprobs[t * K + j]).toBeCloseTo(order[j][0], 4);
      }
    }
  };
}

describe('token log-probabilities', () => {
  it('the native backend scores as PyTorch', () =>
    checkScores(new NativeRounds(model.nativeWeights()))());

  for (const kind of ['sequence', 'step'] as const) {
    it(`the ONNX backend (${kind} export) scores as PyTorch`, async () => {
      const file = path.join(dir, `lm-${kind}.onnx`);
      await exportOnnx(model, file, { kind });
      expect(fs.existsSync(file)).toBe(true);
      await checkScores(await OnnxRounds.open(file, 1))();
    });
  }

  it('orders ties and asks for no alternatives', () => {
    const logits = Float32Array.of(0, 1, 1, -1, 5, 5, 5, 5);
    const s = scoresFromLogits(logits, 4, Int32Array.of(0, 3, 2), 2);
    expect(Array.from(s.top)).toEqual([1, 2, 0, 1]);
    expect(s.logprobs[1]).toBeCloseTo(-Math.log(4), 6);
    const none = scoresFromLogits(logits, 4, Int32Array.of(0, 3, 2), 0);
    expect([none.top.length, none.topLogprobs.length]).toEqual([0, 0]);
  });

  it('refuses too short a sequence and too many alternatives', async () => {
    const scorer = new NativeRounds(model.nativeWeights());
    await expect(scorer.score(Int32Array.of(1), 2)).rejects.toThrow(/at least two tokens/);
    await expect(scorer.score(tokens, 21)).rejects.toThrow(/k must be an integer in \[0, 11\]/);
  });
});
