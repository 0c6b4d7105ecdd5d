// Seq2seq checkpoints in reduced precision: float16 saves, and F16/BF16 files load as float32.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { CharTokenizer, Seq2Seq, readSafetensors, writeSafetensors } from '../../lib/index';
import { float16ToFloat32, float32ToFloat16 } from '../../lib/checkpoint/float16';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir();
const model = new Seq2Seq({
  sourceTokenizer: CharTokenizer.fromText('abcdefgh'),
  targetTokenizer: CharTokenizer.fromText('stuvwxyz', { specials: ['<pad>', '<bos>', '<eos>'] }),
  hiddenSize: 16,
  embeddingSize: 8,
  decoderLayers: 2,
  seed: 9,
});
const weights = (m: Seq2Seq) => m.parameters().map((p) => Array.from(p.data));

describe('seq2seq checkpoints in reduced precision', () => {
  it('save({ dtype: float16 }) halves the file and loads the float16-rounded weights', async () => {
    const full = path.join(dir, 'full.safetensors');
    const half = path.join(dir, 'half.safetensors');
    await model.save(full);
    await model.save(half, { dtype: 'float16' });
    expect(fs.statSync(half).size).toBeLessThan(fs.statSync(full).size / 2 + 4096);
    const { tensors } = await readSafetensors(half);
    expect(new Set(Object.values(tensors).map((t) => t.dtype))).toEqual(new Set(['F16']));
    const loaded = await Seq2Seq.load(half);
    expect(loaded.resumeState).toBeNull();
    const rounded = model
      .parameters()
      .map((p) => Array.from(float16ToFloat32(float32ToFloat16(p.data))));
    expect(weights(loaded)).toEqual(rounded);
    const [t] = await loaded.translate(['abc'], { maxLength: 4 });
    expect(typeof t.text).toBe('string');
  });

  it('loads BF16 weights as the float32 values of their top 16 bits', async () => {
    const full = path.join(dir, 'full.safetensors');
    const { tensors, metadata } = await readSafetensors(full);
    delete metadata.checksums; // the tensors change: the file is written as one without checksums
    const bf16: Parameters<typeof writeSafetensors>[1] = {};
    for (const [name, t] of Object.entries(tensors)) {
      const bits = new Uint32Array(Float32Array.from(t.data as Float32Array).buffer);
      bf16[name] = { dtype: 'BF16', shape: t.shape, data: Uint16Array.from(bits, (b) => b >>> 16) };
    }
    const file = path.join(dir, 'bf16.safetensors');
    await writeSafetensors(file, bf16, metadata);
    const loaded = await Seq2Seq.load(file);
    // Truncation to the top 16 bits, computed here on the bit patterns.
    const truncated = model.parameters().map((p) => {
      const bits = new Uint32Array(Float32Array.from(p.data).buffer).map((b) => b & 0xffff0000);
      return Array.from(new Float32Array(bits.buffer));
    });
    expect(weights(loaded)).toEqual(truncated);
  });

  it('rejects a dtype it does not store, and other tensor dtypes on load', async () => {
    await expect(
      model.save(path.join(dir, 'x.safetensors'), { dtype: 'int8' as 'float16' }),
    ).rejects.toThrow(`dtype must be 'float32' or 'float16', got "int8"`);
    const { tensors, metadata } = await readSafetensors(path.join(dir, 'full.safetensors'));
    delete metadata.checksums; // as above
    const [first] = Object.keys(tensors);
    const ints = {
      ...tensors,
      [first]: {
        dtype: 'I32' as const,
        shape: tensors[first].shape,
        data: new Int32Array(tensors[first].data.length),
      },
    };
    const file = path.join(dir, 'i32.safetensors');
    await writeSafetensors(file, ints, metadata);
    await expect(Seq2Seq.load(file)).rejects.toThrow(
      `tensor '${first}' has dtype I32, expected F32, F16 or BF16`,
    );
  });
});
