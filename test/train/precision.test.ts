// fit's precision option: its values checked by name, bf16 refused on a CPU without bfloat16
// products (saying what the CPU lacks) and trained on one with them, seq2seq models kept to
// float32. This file runs without RNNKIT_BF16, as users do.
import { describe, expect, it } from 'vitest';

import { CharTokenizer, info, LanguageModel } from '../../lib/index';
import { native } from '../../lib/core/native';
import { tinySeq2Seq } from '../helpers/models';

const text = 'to be or not to be, that is the question\n'.repeat(20);
const tokenizer = CharTokenizer.fromText(text);
const model = () => new LanguageModel({ tokenizer, hiddenSize: 8, embeddingSize: 4, seed: 1 });
const options = { steps: 2, batchSize: 2, seqLength: 8, validationSplit: 0 };

describe('fit({ precision })', () => {
  it.each([['fp16'], [3], [null], ['BF16']])('rejects %j naming the option', async (precision) => {
    await expect(model().fit(text, { ...options, precision: precision as never })).rejects.toThrow(
      `precision must be 'float32' or 'bf16', got ${JSON.stringify(precision)}`,
    );
  });

  it('trains in float32 when asked to, as by default', async () => {
    const history = await model().fit(text, { ...options, precision: 'float32' });
    expect(history.steps).toBe(2);
  });

  const { bf16 } = info();
  if (bf16.products === null) {
    it('refuses bf16 on this CPU, naming the option and what the CPU lacks', async () => {
      expect(process.env.RNNKIT_BF16).toBeUndefined();
      expect(bf16.avx512Bf16).toBe(false);
      await expect(model().fit(text, { ...options, precision: 'bf16' })).rejects.toThrow(
        /^precision 'bf16' needs a CPU with AVX512-BF16 \(the vdpbf16ps instruction\), and this CPU( \(.+\))? lacks it.*; train with precision 'float32' \(the default\)$/,
      );
      // The native layers refuse it too, before any work.
      const y = new Float32Array(1).fill(7);
      const one = () => new Float32Array(1);
      expect(() =>
        native.linearForward({ N: 1, I: 1, O: 1, precision: 'bf16' }, one(), one(), null, y),
      ).toThrow(/linearForward: 'shape.precision' 'bf16' needs a CPU with AVX512-BF16/);
      expect(y[0]).toBe(7);
    });
  } else {
    it(`trains in bf16 on this CPU's ${bf16.products} kernel`, async () => {
      const history = await model().fit(text, { ...options, precision: 'bf16' });
      expect(history.steps).toBe(2);
      expect(Number.isFinite(history.train.at(-1)?.loss)).toBe(true);
    });
  }

  it('refuses to train a quantized model whatever the precision', async () => {
    await expect(
      model()
        .quantize('int8')
        .fit(text, { ...options, precision: 'bf16' }),
    ).rejects.toThrow(/weights are int8, quantized for inference/);
  });

  it('refuses bf16 for a seq2seq model, naming the option', async () => {
    const pairs = [{ source: 'abc', target: 'uvw' }];
    await expect(
      tinySeq2Seq().fit(pairs, { steps: 1, precision: 'bf16' } as never),
    ).rejects.toThrow(
      `precision must be 'float32' for a seq2seq model (bf16 training is for language models), got "bf16"`,
    );
  });
});
