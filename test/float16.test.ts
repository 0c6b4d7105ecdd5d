import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToFloat16,
  toFloat16Bits,
} from '../lib/checkpoint/float16';
import { float32Data, readSafetensors, writeSafetensors } from '../lib/checkpoint/safetensors';
import { CharTokenizer, LanguageModel } from '../dist/index.js';

const work = mkdtempSync(path.join(tmpdir(), 'rnnkit-float16-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Float32 values over the whole binary16 range and beyond: edges, ties, subnormals, random. */
function probes(): number[] {
  const fixed = [
    0,
    -0,
    1,
    -2,
    0.1,
    1 / 3,
    65504,
    65519.99,
    65520,
    1e6,
    -1e6,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.0001,
    3 * 2 ** -25,
    2 ** -26,
    1e-10,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -11 + 2 ** -20,
    2049,
    2051,
    4097,
    Math.PI,
    -Math.E,
  ];
  const random: number[] = [];
  let s = 12345;
  for (let i = 0; i < 4000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const mantissa = 1 + (s >>> 8) / 2 ** 24;
    const exponent = (i % 48) - 30;
    random.push((i & 1 ? -1 : 1) * mantissa * 2 ** exponent);
  }
  return Array.from(Float32Array.from([...fixed, ...random]));
}

const hasPython = spawnSync('python3', ['--version']).status === 0;

describe('float16', () => {
  it('every binary16 value survives widening and narrowing unchanged', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = float16ToFloat32(all);
    const back = float32ToFloat16(wide);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(wide[h])).toBe(true);
      else if (back[h] !== h)
        expect.fail(`0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
    }
    expect(wide[0x3c00]).toBe(1);
    expect(wide[0x7bff]).toBe(65504);
    expect(wide[0x0001]).toBe(2 ** -24);
    expect(wide[0xfc00]).toBe(-Infinity);
  });

  it('rounds to nearest, ties to even, overflowing to Infinity', () => {
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie: down to the even 1.0
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: up to the even neighbour
    expect(toFloat16Bits(65520)).toBe(0x7c00);
    expect(toFloat16Bits(-1e9)).toBe(0xfc00);
    expect(toFloat16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal
    expect(toFloat16Bits(3 * 2 ** -25)).toBe(2);
    expect(toFloat16Bits(NaN) & 0x7e00).toBe(0x7e00);
  });

  it.skipIf(!hasPython)("agrees with Python's struct 'e' (IEEE binary16) conversion", () => {
    // JSON cannot carry -0 (the round-trip test covers it); struct refuses values that overflow.
    const values = probes().filter((v) => !Object.is(v, -0) && Math.abs(v) < 65520);
    const script =
      'import json, struct, sys\n' +
      "print(json.dumps([struct.unpack('<H', struct.pack('<e', v))[0] for v in json.load(sys.stdin)]))";
    const theirs = JSON.parse(
      execFileSync('python3', ['-c', script], { input: JSON.stringify(values), encoding: 'utf8' }),
    ) as number[];
    expect(Array.from(float32ToFloat16(Float32Array.from(values)))).toEqual(theirs);
  });

  it('bfloat16 widens to the float32 with those top 16 bits', () => {
    const wide = bfloat16ToFloat32(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0x0001));
    expect(Array.from(wide)).toEqual([1, -2, Infinity, 2 ** -133]);
  });

  it('F16 and BF16 tensors round-trip through safetensors and read as float32', async () => {
    const file = path.join(work, 'half.safetensors');
    const half = float32ToFloat16(Float32Array.of(0.5, -3, 1000));
    await writeSafetensors(file, {
      h: { dtype: 'F16', shape: [3], data: half },
      b: { dtype: 'BF16', shape: [1], data: Uint16Array.of(0x4040) },
      i: { dtype: 'I32', shape: [1], data: Int32Array.of(7) },
    });
    const { tensors } = await readSafetensors(file);
    expect(tensors.h.dtype).toBe('F16');
    expect(Array.from(float32Data(tensors.h, 'h'))).toEqual([0.5, -3, 1000]);
    expect(Array.from(float32Data(tensors.b, 'b'))).toEqual([3]);
    expect(() => float32Data(tensors.i, "tensor 'i'")).toThrow(
      "tensor 'i' has dtype I32, expected F32, F16 or BF16",
    );
  });
});

describe('float16 checkpoints', () => {
  const tokenizer = CharTokenizer.fromText('the quick brown fox jumps over the lazy dog');
  const model = new LanguageModel({
    vocabSize: tokenizer.size,
    embeddingSize: 16,
    cell: 'lstm',
    hiddenSize: 48,
    numLayers: 2,
    tokenizer,
    seed: 3,
  });

  it('halves the file and loads back to float32 weights within float16 rounding', async () => {
    const full = path.join(work, 'full.safetensors');
    const half = path.join(work, 'half-model.safetensors');
    await model.save(full);
    await model.save(half, { dtype: 'float16' });
    const headerRoom = 4096;
    expect(statSync(half).size).toBeLessThan(statSync(full).size / 2 + headerRoom);
    const loaded = await LanguageModel.load(half);
    expect(loaded.resumeState).toBeNull();
    const ids = [[1], [2], [3], [4]];
    const a = model.forward(ids).logits;
    const b = loaded.forward(ids).logits;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(1e-2);
    const texts = await loaded.generate({ prompts: ['the'], maxTokens: 5, seed: 1 });
    expect(texts[0]).toHaveLength(5);
  });

  it('rejects a dtype it does not store', async () => {
    await expect(
      model.save(path.join(work, 'x.safetensors'), { dtype: 'int8' as 'float16' }),
    ).rejects.toThrow(`dtype must be 'float32' or 'float16', got "int8"`);
  });
});
