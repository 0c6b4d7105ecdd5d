// Quantized sequence-to-sequence models: int8 and bf16 translation of a trained date model against
// float32, checkpoints that load back bit-exactly, the CLI's quantize and translate on them, and
// every bad input named.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  CharTokenizer,
  LanguageModel,
  Seq2Seq,
  dateAlphabet,
  datePairs,
  readSafetensors,
} from '../../lib/index';
import { native, type Seq2SeqDecoderWeights } from '../../lib/core/native';
import type { Tensor } from '../../lib/checkpoint/safetensors';
import { editedCheckpoint, type CheckpointEdit } from '../helpers/checkpoint';
import { runCli } from '../helpers/cli';
import { searchConfig } from '../helpers/models';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir();
const src = CharTokenizer.fromText(dateAlphabet());
const tgt = CharTokenizer.fromText('0123456789-', { specials: ['<pad>', '<bos>', '<eos>'] });
const test = datePairs(300, 2);
let float: Seq2Seq;

const exact = (texts: string[]) =>
  texts.filter((t, i) => t === test[i].target).length / test.length;
const texts = async (m: Seq2Seq, beam: number) =>
  (
    await m.translate(
      test.map((p) => p.source),
      { beam },
    )
  ).map((t) => t.text);

beforeAll(async () => {
  float = new Seq2Seq({
    sourceTokenizer: src,
    targetTokenizer: tgt,
    embeddingSize: 24,
    hiddenSize: 96,
    attention: 'additive',
    seed: 1,
  });
  await float.fit(datePairs(20000, 1), {
    steps: 250,
    batchSize: 64,
    learningRate: 3e-3,
    lrSchedule: 'constant',
  });
}, 120_000);

function small(inputFeeding = false) {
  return new Seq2Seq({
    sourceTokenizer: src,
    targetTokenizer: tgt,
    embeddingSize: 8,
    hiddenSize: 12,
    cell: 'gru',
    attention: 'general',
    decoderLayers: 2,
    inputFeeding,
    seed: 4,
  });
}

describe('quantized translation', () => {
  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: date accuracy within a point of float32, greedy and beam 5`, async () => {
      const q = float.quantize(dtype);
      expect(float.quantization).toBeNull();
      for (const beam of [1, 5]) {
        const want = await texts(float, beam);
        const got = await texts(q, beam);
        expect(exact(want)).toBeGreaterThan(0.9);
        expect(Math.abs(exact(got) - exact(want))).toBeLessThanOrEqual(0.01);
        const same = got.filter((t, i) => t === want[i]).length;
        expect(same / got.length).toBeGreaterThan(0.95);
      }
    });
  }

  it('int8 searches on int8 products: beam scores move off float32, a batch equals each alone', async () => {
    const q = float.quantize('int8');
    const few = test.slice(0, 12).map((p) => p.source);
    const [a, b] = [await float.translate(few, { beam: 3 }), await q.translate(few, { beam: 3 })];
    const moved = b.filter((t, i) => t.hypotheses[0].score !== a[i].hypotheses[0].score);
    expect(moved.length).toBeGreaterThan(0);
    for (const [i, s] of few.entries()) {
      const [alone] = await q.translate([s], { beam: 3 });
      expect(alone.hypotheses[0].score).toBe(b[i].hypotheses[0].score);
      expect(alone.text).toBe(b[i].text);
    }
  });
});

describe('a quantized decoder packed once', () => {
  // A small model's decoder, random encoder states of two sources (lengths 3 and 2) and their
  // initial state, as native beam search reads them.
  const inputs = (q: Seq2Seq) => {
    const state = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
    return {
      enc: state(3 * 2 * q.encoderSize),
      lengths: Int32Array.of(3, 2),
      h0: state(2 * 2 * 12),
      c0: null,
    };
  };

  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: searches on it equal searches that pack the weights themselves`, () => {
      const q = small(true).quantize(dtype);
      const packed = new native.PackedSeq2SeqDecoder(q.nativeDecoder());
      expect(packed.weightBytes).toBeGreaterThan(0);
      for (const beam of [1, 3]) {
        const config = searchConfig({
          S: 3,
          B: 2,
          beam,
          nBest: beam,
          maxLength: 6,
          bos: q.spec.bos,
          eos: q.spec.eos,
        });
        const own = native.seq2seqBeamSearch({ ...q.nativeDecoder(), ...inputs(q), config });
        expect(native.seq2seqBeamSearch({ packed, ...inputs(q), config })).toEqual(own);
      }
    });
  }

  it('a quantized model packs its decoder on its first search only; a float32 one never keeps one', async () => {
    const original = native.PackedSeq2SeqDecoder;
    let made = 0;
    native.PackedSeq2SeqDecoder = new Proxy(original, {
      construct: (target, args: [Seq2SeqDecoderWeights]) => (made++, new target(...args)),
    });
    try {
      const sources = test.slice(0, 4).map((p) => p.source);
      const q = float.quantize('int8');
      const first = await q.translate(sources, { beam: 3 });
      expect(await q.translate(sources, { beam: 3 })).toEqual(first);
      await q.translate(sources.slice(0, 1));
      expect(made).toBe(1);
      await float.translate(sources);
      expect(made).toBe(1);
    } finally {
      native.PackedSeq2SeqDecoder = original;
    }
  });

  it('the search refuses another packed model, or one beside the weights, naming the field', () => {
    const q = small().quantize('int8');
    const config = searchConfig({ S: 3, B: 2, bos: q.spec.bos, eos: q.spec.eos });
    const lm = new native.PackedLm(
      new LanguageModel({ vocabSize: 5, hiddenSize: 4, embeddingSize: 3 }).nativeWeights(),
    );
    expect(() => native.seq2seqBeamSearch({ packed: lm, ...inputs(q), config })).toThrow(
      /seq2seqBeamSearch: 'packed' must be a PackedSeq2SeqDecoder, got an object/,
    );
    const packed = new native.PackedSeq2SeqDecoder(q.nativeDecoder());
    expect(() =>
      native.seq2seqBeamSearch({ ...q.nativeDecoder(), packed, ...inputs(q), config }),
    ).toThrow(/seq2seqBeamSearch: 'options' has no field 'decoder'; its fields are packed, /);
    expect(() =>
      native.lmGenerate(
        packed,
        { tokens: Int32Array.of(1), offsets: Int32Array.of(0, 1) },
        {} as never,
        null,
        null,
      ),
    ).toThrow(/lmGenerate: 'weights.cell' must be a string/);
  });
});

describe('quantized seq2seq checkpoints', () => {
  for (const dtype of ['int8', 'bf16'] as const) {
    it(`${dtype}: save and load give back the same weights, bit for bit`, async () => {
      const q = small(true).quantize(dtype);
      const file = path.join(dir, `s2s-${dtype}.safetensors`);
      await q.save(file);
      const { tensors, metadata } = await readSafetensors(file);
      expect(metadata.weights).toBe(dtype);
      const want = dtype === 'int8' ? 'I8' : 'BF16';
      for (const name of [
        'encoder.weight_ih_l0',
        'encoder_reverse.weight_hh_l0',
        'bridge_h.weight',
        'decoder.weight_hh_l1',
        'attention.score_weight',
        'attention.combine_weight',
        'output.weight',
      ]) {
        expect(tensors[name].dtype, name).toBe(want);
      }
      for (const name of ['source_embedding.weight', 'bridge_h.bias', 'output.bias']) {
        expect(tensors[name].dtype, name).toBe('F32');
      }
      if (dtype === 'int8') {
        expect(tensors['attention.combine_weight.scale'].shape).toEqual([12]);
      }
      const back = await Seq2Seq.load(file);
      expect(back.quantization?.dtype).toBe(dtype);
      back.parameters().forEach((p, i) => expect(p.data).toEqual(q.parameters()[i].data));
      const again = path.join(dir, `s2s-${dtype}-again.safetensors`);
      await back.save(again);
      expect(fs.readFileSync(again).equals(fs.readFileSync(file))).toBe(true);
      const sources = test.slice(0, 5).map((p) => p.source);
      const run = async (m: Seq2Seq) =>
        (await m.translate(sources, { beam: 2, maxLength: 12 })).map((t) => t.hypotheses[0]);
      expect(await run(back)).toEqual(await run(q));
    });
  }

  it('load(path, { weights }) quantizes a float32 checkpoint as quantize does', async () => {
    const m = small();
    const file = path.join(dir, 's2s-f32.safetensors');
    await m.save(file);
    const loaded = await Seq2Seq.load(file, { weights: 'int8' });
    const direct = m.quantize('int8');
    loaded.parameters().forEach((p, i) => expect(p.data).toEqual(direct.parameters()[i].data));
    expect(loaded.quantization?.scales).toEqual(direct.quantization?.scales);
    expect(m.quantization).toBeNull();
  });

  it('rnnkit quantize writes a seq2seq model that translate runs as the library does', async () => {
    const file = path.join(dir, 's2s-cli.safetensors');
    await float.save(file, { weightsOnly: true });
    const out = path.join(dir, 's2s-cli-int8.safetensors');
    const r = runCli(['quantize', '--model', file, '--out', out, '--dtype', 'int8']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/quantized Seq2Seq\(.* to int8: /);
    expect(fs.statSync(out).size * 3).toBeLessThan(fs.statSync(file).size);
    const inputs = test.slice(0, 4).map((p) => p.source);
    const t = runCli([
      'translate',
      '--model',
      out,
      '--beam',
      '3',
      ...inputs.flatMap((s) => ['--input', s]),
    ]);
    expect(t.status, t.stderr).toBe(0);
    const want = await float.quantize('int8').translate(inputs, { beam: 3 });
    expect(t.stdout).toBe(want.map((w) => `${w.text}\n`).join(''));
  });
});

describe('quantized seq2seq bad input', () => {
  let int8File = '';
  beforeAll(async () => {
    int8File = path.join(dir, 's2s-bad-base.safetensors');
    await small().quantize('int8').save(int8File);
  });

  it('refuses to train, to quantize twice, float16 saves and another type', async () => {
    const q = small().quantize('int8');
    await expect(q.fit(datePairs(50, 3), { steps: 2 })).rejects.toThrow(
      /weights are int8, quantized for inference/,
    );
    expect(() => q.quantize('bf16')).toThrow(/already int8/);
    await expect(q.save(path.join(dir, 'x.safetensors'), { dtype: 'float16' })).rejects.toThrow(
      /saved with its int8 weights/,
    );
    await expect(Seq2Seq.load(int8File, { weights: 'bf16' })).rejects.toThrow(
      /holds int8 weights, not bf16/,
    );
    await expect(Seq2Seq.load(int8File, { weights: 'int4' as 'int8' })).rejects.toThrow(
      /weights must be 'int8' or 'bf16', got "int4"/,
    );
  });

  const cases: [string, CheckpointEdit, RegExp][] = [
    [
      'attention scales missing',
      (t) => delete t['attention.combine_weight.scale'],
      /'attention.combine_weight' is int8 without its scales/,
    ],
    [
      'a zero encoder scale',
      (t) => ((t['encoder.weight_hh_l0.scale'].data as Float32Array)[2] = 0),
      /'encoder.weight_hh_l0.scale' holds 0 at index \[2\]/,
    ],
    [
      'an output matrix of the wrong shape',
      (t) => (t['output.weight'] = { ...t['output.weight'], shape: [12, 15] } as Tensor),
      /'output.weight' has shape \[12, 15\], expected \[15, 12\]/,
    ],
    [
      'int8 tensors in a float32 checkpoint',
      (_t, m) => delete m.weights,
      /is (int8|a scale), but the checkpoint's metadata 'weights' does not say 'int8'/,
    ],
  ];
  for (const [what, edit, message] of cases) {
    it(`names the tensor: ${what}`, async () => {
      const file = await editedCheckpoint(
        int8File,
        dir,
        `s2s-${what.replace(/\W+/g, '-')}.safetensors`,
        edit,
      );
      await expect(Seq2Seq.load(file)).rejects.toThrow(message);
    });
  }

  it('the native search refuses bad scales and scales without int8, naming the field', () => {
    const q = small().quantize('int8');
    const d = q.nativeDecoder();
    const search = (fields: object) =>
      native.seq2seqBeamSearch({
        ...d,
        ...fields,
        enc: new Float32Array(3 * q.encoderSize),
        lengths: Int32Array.of(3),
        h0: new Float32Array(2 * 12),
        c0: null,
        config: searchConfig({ S: 3, bos: q.spec.bos, eos: q.spec.eos }),
      });
    expect(search({}).lengths).toHaveLength(1);
    const bad = d.attentionScales!.slice();
    bad[5] = NaN;
    expect(() => search({ attentionScales: bad })).toThrow(
      /'attentionScales\[5\]' must be a finite number > 0 \(a scale\), got nan/,
    );
    expect(() => search({ outScales: d.outScales!.subarray(1) })).toThrow(
      /'outScales' must be a Float32Array of length 15 \(V\), got length 14/,
    );
    expect(() => search({ weights: 'bf16' })).toThrow(/'stackScales' belongs to int8 weights only/);
    expect(() => search({ weights: 'int4' })).toThrow(
      /'weights' must be one of 'float32', 'int8', 'bf16', got 'int4'/,
    );
  });
});
