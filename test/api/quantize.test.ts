// Quantized language models: int8 and bf16 generation against float32 on the shipped default model,
// checkpoints that load back bit-exactly, and every bad input named.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { BatchingGenerator, CharTokenizer, LanguageModel, readSafetensors } from '../../lib/index';
import { native, type NativePacked } from '../../lib/core/native';
import type { Tensor } from '../../lib/checkpoint/safetensors';
import { editedCheckpoint, type CheckpointEdit } from '../helpers/checkpoint';
import { ROOT } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir();
const DEFAULT = path.join(ROOT, 'models', 'default.safetensors');
const corpus = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
let float: LanguageModel;

beforeAll(async () => {
  float = await LanguageModel.load(DEFAULT);
});

function small() {
  return new LanguageModel({
    tokenizer: CharTokenizer.fromText('abcdefgh \n'),
    cell: 'gru',
    hiddenSize: 20,
    embeddingSize: 6,
    numLayers: 2,
    seed: 5,
  });
}

describe('quantized generation', () => {
  // 100 prompts from the held-out end of the corpus the default model was trained on.
  const prompts = Array.from({ length: 100 }, (_, i) => {
    const at = Math.floor(corpus.length * 0.95) + i * 500;
    return corpus.slice(at, at + 40);
  });
  const agreement = (a: string[], b: string[]) => {
    let same = 0;
    let all = 0;
    a.forEach((s, i) => {
      for (let k = 0; k < s.length; k++) same += s[k] === b[i][k] ? 1 : 0;
      all += s.length;
    });
    return same / all;
  };

  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: greedy tokens mostly agree with float32 on 100 prompts`, async () => {
      const options = { prompts, maxTokens: 32, temperature: 0 };
      const want = await float.generate(options);
      const got = await float.quantize(dtype).generate(options);
      // Position by position: after a first different token the rows continue from different
      // text, so this counts that divergence whole.
      expect(agreement(got, want)).toBeGreaterThan(dtype === 'int8' ? 0.6 : 0.8);
      expect(got).not.toEqual(Array(100).fill(got[0]));
    });
  }

  it('int8 and bf16 held-out loss stay near float32 (1% and 0.2%)', () => {
    const text = corpus.slice(
      Math.floor(corpus.length * 0.95),
      Math.floor(corpus.length * 0.95) + 20000,
    );
    const f = float.evaluate(text).loss;
    expect(Math.abs(float.quantize('int8').evaluate(text).loss / f - 1)).toBeLessThan(0.01);
    expect(Math.abs(float.quantize('bf16').evaluate(text).loss / f - 1)).toBeLessThan(0.002);
  });

  it('lmScore on float32 weights gives the loss evaluate computes with the training forward', () => {
    const ids = float.tokenizer!.encode(corpus.slice(0, 3001));
    const sum = native.lmScore(float.nativeWeights(), ids, 30);
    const { loss } = float.evaluate(corpus.slice(0, 3001), { seqLength: 100 });
    expect(Math.abs(sum / (ids.length - 1) / loss - 1)).toBeLessThan(1e-4);
  });

  it('streams and packs its weights in fewer bytes', async () => {
    const q = float.quantize('int8');
    let streamed = '';
    for await (const piece of q.stream({ prompt: 'ROMEO:', maxTokens: 20, temperature: 0 })) {
      streamed += piece;
    }
    const [whole] = await q.generate({ prompts: ['ROMEO:'], maxTokens: 20, temperature: 0 });
    expect(streamed).toBe(whole);
    const bytes = (m: LanguageModel) => new native.TokenLoop(m.nativeWeights()).weightBytes;
    expect(bytes(q) * 3).toBeLessThan(bytes(float));
    expect(bytes(float.quantize('bf16')) * 1.8).toBeLessThan(bytes(float));
  });
});

describe('a quantized model packed once', () => {
  const options = {
    maxTokens: 30,
    temperature: 1,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    noRepeatNgramSize: 0,
    seed: 9,
    rowOffset: 0,
  };

  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: generates and scores on it as on weights packed per call`, () => {
      const q = float.quantize(dtype);
      const packed = q.nativeModel();
      expect(q.nativeModel()).toBe(packed);
      expect(packed).toHaveProperty(
        'weightBytes',
        new native.TokenLoop(q.nativeWeights()).weightBytes,
      );
      const ids = q.tokenizer!.encode(corpus.slice(0, 400));
      const prompts = { tokens: ids.subarray(0, 30), offsets: Int32Array.of(0, 10, 30) };
      const own = native.lmGenerate(q.nativeWeights(), prompts, options, null, null);
      expect(native.lmGenerate(packed, prompts, options, null, null)).toEqual(own);
      expect(native.lmScore(packed, ids, 7)).toBe(native.lmScore(q.nativeWeights(), ids, 7));
    });
  }

  it('close() frees the packed weights once its generations end; the packed object is then refused', async () => {
    const q = float.quantize('int8');
    const packed = q.nativeModel() as NativePacked;
    const running = q.generate({ prompts: ['ROMEO:'], maxTokens: 50 });
    await q.close();
    expect(await running).toHaveLength(1);
    expect(packed.weightBytes).toBe(0);
    const prompts = { tokens: Int32Array.of(1), offsets: Int32Array.of(0, 1) };
    expect(() => native.lmGenerate(packed, prompts, options, null, null)).toThrow(
      /lmGenerate: 'weights' is a PackedLm that was released/,
    );
  });

  it('a float32 model keeps no packed weights: its generation follows its weights as they change', async () => {
    const m = small();
    expect(m.nativeModel()).toHaveProperty('embedding', m.embedding.weight.data);
    const greedy = { prompts: ['ab'], maxTokens: 8, temperature: 0 };
    const before = await m.generate(greedy);
    const h = m.tokenizer!.encode('h')[0];
    m.decoder.bias!.data[h] = 1e3;
    const [after] = await m.generate(greedy);
    expect(after).toBe('h'.repeat(8));
    expect(before[0]).not.toBe(after);
  });
});

describe('quantized checkpoints', () => {
  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: save and load give back the same weights, bit for bit`, async () => {
      const q = small().quantize(dtype);
      const file = path.join(dir, `q-${dtype}.safetensors`);
      await q.save(file);
      const { tensors, metadata } = await readSafetensors(file);
      expect(metadata.weights).toBe(dtype);
      expect(tensors['rnn.weight_hh_l1'].dtype).toBe(dtype === 'int8' ? 'I8' : 'BF16');
      expect(tensors['embedding.weight'].dtype).toBe('F32');
      if (dtype === 'int8') {
        expect(tensors['decoder.weight.scale'].shape).toEqual([q.spec.vocabSize]);
      }
      const back = await LanguageModel.load(file);
      expect(back.quantization?.dtype).toBe(dtype);
      back.parameters().forEach((p, i) => expect(p.data).toEqual(q.parameters()[i].data));
      for (const [name, s] of Object.entries(q.quantization!.scales)) {
        expect(back.quantization!.scales[name]).toEqual(s);
      }
      const again = path.join(dir, `q-${dtype}-again.safetensors`);
      await back.save(again);
      expect(fs.readFileSync(again).equals(fs.readFileSync(file))).toBe(true);
      const options = { prompts: ['abc', 'h'], maxTokens: 12, temperature: 0 };
      expect(await back.generate(options)).toEqual(await q.generate(options));
    });
  }

  it('the serving engine loads an int8 checkpoint and generates what the model does', async () => {
    const q = small().quantize('int8');
    const file = path.join(dir, 'serve-int8.safetensors');
    await q.save(file);
    const generator = await BatchingGenerator.load(file, { maxBatch: 2 });
    try {
      const options = { prompts: ['abc', 'h', 'ggg', 'fed'], maxTokens: 12, temperature: 0 };
      expect(await generator.generate(options)).toEqual(await q.generate(options));
    } finally {
      await generator.close();
    }
  });

  it('load(path, { weights }) quantizes a float32 checkpoint as quantize does', async () => {
    const m = small();
    const file = path.join(dir, 'f32.safetensors');
    await m.save(file);
    const loaded = await LanguageModel.load(file, { weights: 'int8' });
    const direct = m.quantize('int8');
    loaded.parameters().forEach((p, i) => expect(p.data).toEqual(direct.parameters()[i].data));
    expect(m.quantization).toBeNull();
  });
});

describe('quantization bad input', () => {
  let int8File = '';
  beforeAll(async () => {
    int8File = path.join(dir, 'bad-base.safetensors');
    await small().quantize('int8').save(int8File);
  });

  it('refuses to quantize a quantized model, or to an unknown type', () => {
    const q = small().quantize('bf16');
    expect(() => q.quantize('int8')).toThrow(/already bf16/);
    expect(() => small().quantize('int4' as 'int8')).toThrow(
      /dtype must be 'int8' or 'bf16', got "int4"/,
    );
  });

  it('refuses to train a quantized model, naming its weights', async () => {
    for (const dtype of ['int8', 'bf16'] as const) {
      await expect(small().quantize(dtype).fit('abc abc abc '.repeat(50))).rejects.toThrow(
        new RegExp(`weights are ${dtype}, quantized for inference`),
      );
    }
  });

  it('refuses float16 for a quantized save, and a type the file does not hold', async () => {
    await expect(
      small().quantize('int8').save(path.join(dir, 'x.safetensors'), { dtype: 'float16' }),
    ).rejects.toThrow(/saved with its int8 weights/);
    await expect(LanguageModel.load(int8File, { weights: 'bf16' })).rejects.toThrow(
      /holds int8 weights, not bf16/,
    );
  });

  const cases: [string, CheckpointEdit, RegExp][] = [
    [
      'int8 without scales',
      (t) => delete t['rnn.weight_hh_l0.scale'],
      /'rnn.weight_hh_l0' is int8 without its scales: .*no 'rnn.weight_hh_l0.scale'/,
    ],
    [
      'a zero scale',
      (t) => ((t['rnn.weight_ih_l1.scale'].data as Float32Array)[3] = 0),
      /'rnn.weight_ih_l1.scale' holds 0 at index \[3\]; scales must be finite numbers > 0/,
    ],
    [
      'a NaN scale',
      (t) => ((t['decoder.weight.scale'].data as Float32Array)[0] = NaN),
      /'decoder.weight.scale' holds NaN at index \[0\]/,
    ],
    [
      'a negative scale',
      (t) => ((t['rnn.weight_hh_l1.scale'].data as Float32Array)[59] = -0.5),
      /'rnn.weight_hh_l1.scale' holds -0.5 at index \[59\]/,
    ],
    [
      'scales of the wrong shape',
      (t) => {
        const s = t['rnn.weight_hh_l0.scale'];
        t['rnn.weight_hh_l0.scale'] = {
          ...s,
          shape: [59],
          data: (s.data as Float32Array).slice(1),
        } as Tensor;
      },
      /'rnn.weight_hh_l0.scale' has shape \[59\], expected \[60\]: one scale per row of 'rnn.weight_hh_l0' \[60, 20\]/,
    ],
    [
      'an int8 matrix of the wrong shape',
      (t) => {
        const w = t['rnn.weight_hh_l0'];
        t['rnn.weight_hh_l0'] = { ...w, shape: [20, 60] } as Tensor;
      },
      /'rnn.weight_hh_l0' has shape \[20, 60\], expected \[60, 20\]/,
    ],
    [
      'a quantized matrix stored as F32',
      (t) => {
        const w = t['decoder.weight'];
        t['decoder.weight'] = {
          dtype: 'F32',
          shape: w.shape,
          data: Float32Array.from(w.data as Int8Array),
        };
      },
      /'decoder.weight' has dtype F32; a int8 checkpoint stores it as I8/,
    ],
    [
      'int8 tensors in a float32 checkpoint',
      (_t, m) => delete m.weights,
      /tensor '.*' is (int8|a scale), but the checkpoint's metadata 'weights' does not say 'int8'/,
    ],
    [
      'an unknown weight type',
      (_t, m) => (m.weights = 'int4'),
      /metadata 'weights' is "int4"; rnnkit reads 'int8' or 'bf16'/,
    ],
  ];
  for (const [what, edit, message] of cases) {
    it(`names the tensor or field: ${what}`, async () => {
      const file = await editedCheckpoint(
        int8File,
        dir,
        `${what.replace(/\W+/g, '-')}.safetensors`,
        edit,
      );
      await expect(LanguageModel.load(file)).rejects.toThrow(message);
    });
  }

  it('the native boundary refuses scales that are not > 0, naming the field', () => {
    const w = small().quantize('int8').nativeWeights();
    const stackScales = w.stackScales!.slice();
    stackScales[3] = 0;
    expect(() => new native.TokenLoop({ ...w, stackScales })).toThrow(
      /'weights.stackScales\[3\]' must be a finite number > 0 \(a scale\), got 0/,
    );
    expect(() => new native.TokenLoop({ ...w, weights: 'float32' })).toThrow(
      /'weights.stackScales' belongs to int8 weights only/,
    );
    const noScales = { ...w, stackScales: undefined };
    expect(() => new native.TokenLoop(noScales)).toThrow(/weights.stackScales/);
  });
});
