// What the tests of exported Seq2Seq models share: their vocabularies, a named model config, and
// the helpers that feed onnxruntime and compare its outputs.
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, expect } from 'vitest';

import { CharTokenizer, Seq2Seq, exportSeq2SeqOnnx, type Seq2SeqConfig } from '../../lib/index';

export const sourceTokenizer = CharTokenizer.fromText('abcdefghij ');
export const targetTokenizer = CharTokenizer.fromText('0123456789-', {
  specials: ['<pad>', '<bos>', '<eos>'],
});

/** A model config under the name its test case and its files take. */
export interface Seq2SeqCase {
  name: string;
  config: Seq2SeqConfig;
}

/**
 * Every attention kind and cell, both encoder directions, stacked layers, input feeding on and
 * off.
 */
export const SEQ2SEQ_CASES: Seq2SeqCase[] = [
  {
    name: 'dot lstm bidirectional input-feeding',
    config: { attention: 'dot', inputFeeding: true },
  },
  {
    name: 'general gru bidirectional 2 layers',
    config: { attention: 'general', cell: 'gru', encoderLayers: 2, decoderLayers: 2 },
  },
  {
    name: 'additive rnn unidirectional 2 layers input-feeding',
    config: {
      attention: 'additive',
      cell: 'rnn',
      bidirectional: false,
      encoderLayers: 2,
      decoderLayers: 2,
      inputFeeding: true,
    },
  },
  { name: 'additive lstm bidirectional', config: { attention: 'additive', decoderLayers: 2 } },
];

/** A small untrained model of these vocabularies (E 8, H 12, seed 7), `config` over that. */
export function smallSeq2Seq(config: Seq2SeqConfig): Seq2Seq {
  return new Seq2Seq({
    sourceTokenizer,
    targetTokenizer,
    embeddingSize: 8,
    hiddenSize: 12,
    seed: 7,
    ...config,
  });
}

/**
 * Before the file's tests run, each case's model (`make` of its config) exported under `dir`:
 * the models by case, and each case's export name (X.onnx, for X.encoder.onnx and X.decoder.onnx).
 */
export function exportedCases(
  cases: readonly Seq2SeqCase[],
  dir: string,
  make: (config: Seq2SeqConfig) => Seq2Seq,
) {
  const fileOf = (c: Seq2SeqCase) => path.join(dir, `${c.name.replace(/ /g, '-')}.onnx`);
  const models = new Map<Seq2SeqCase, Seq2Seq>();
  beforeAll(async () => {
    for (const c of cases) {
      const model = make(c.config);
      models.set(c, model);
      await exportSeq2SeqOnnx(model, fileOf(c));
    }
  });
  return { fileOf, models };
}

/** The largest |a[i] - b[i]|; a and b must have one length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** An int64 tensor of these values. */
export const int64 = (a: ArrayLike<number>, dims: number[]) =>
  new ort.Tensor('int64', BigInt64Array.from(Array.from(a), BigInt), dims);

/**
 * One run of an exported decoder step: `tokens` (one per row) from `state` (h0, and c0, feed0
 * where the model has them), over the memory, keys and mask the encoder gave.
 */
export function decoderStep(
  decoder: ort.InferenceSession,
  tokens: ArrayLike<number>,
  state: Record<string, ort.Tensor>,
  encoded: ort.InferenceSession.ReturnType,
): Promise<ort.InferenceSession.ReturnType> {
  return decoder.run({
    tokens: int64(tokens, [1, tokens.length]),
    ...state,
    memory: encoded.memory,
    keys: encoded.keys,
    mask: encoded.mask,
  });
}
