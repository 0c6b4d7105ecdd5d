// Strict, verified model files: checkpoints whose tensors disagree with their spec, spec fields of
// the wrong type, non-finite weights and corrupted bytes are refused with an error naming the
// tensor or field; files without checksums still load.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  CharTokenizer,
  LanguageModel,
  Seq2Seq,
  loadModel,
  readSafetensors,
  writeSafetensors,
} from '../../lib/index';
import { crc32c } from '../../lib/checkpoint/verify';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-verify-'));
const corpus = 'the cat sat on the mat. the dog ate the log.';
let counter = 0;
const fresh = () => path.join(tmp, `m${counter++}.safetensors`);

function lm(extra: Record<string, unknown> = {}) {
  return new LanguageModel({
    tokenizer: CharTokenizer.fromText(corpus),
    cell: 'lstm',
    hiddenSize: 8,
    embeddingSize: 6,
    numLayers: 2,
    seed: 5,
    ...extra,
  });
}

type Contents = Awaited<ReturnType<typeof readSafetensors>>;

/**
 * Saves a model, applies `edit` to the file's tensors and metadata, and writes it back: without
 * its checksums (as an older file, so that the checks below them are reached) unless `keep`.
 */
async function edited(
  model: { save(p: string): Promise<void> },
  edit: (c: Contents) => void,
  keep = false,
): Promise<string> {
  const file = fresh();
  await model.save(file);
  const c = await readSafetensors(file);
  if (!keep) delete c.metadata.checksums;
  edit(c);
  await writeSafetensors(file, c.tensors, c.metadata);
  return file;
}

const spec = (c: Contents) => JSON.parse(c.metadata.spec) as Record<string, unknown>;
const setSpec = (c: Contents, s: Record<string, unknown>) => {
  c.metadata.spec = JSON.stringify(s);
};

describe('CRC-32C', () => {
  it('matches the standard check value and continues across calls', () => {
    const bytes = new TextEncoder().encode('123456789');
    expect(crc32c(bytes)).toBe(0xe3069283);
    expect(crc32c(bytes.subarray(5), crc32c(bytes.subarray(0, 5)))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  });
});

describe('strict language-model checkpoints', () => {
  it('refuses a two-layer file whose spec says one layer, or omits numLayers', async () => {
    const one = await edited(lm(), (c) => setSpec(c, { ...spec(c), numLayers: 1 }));
    await expect(loadModel(one)).rejects.toThrow(/unexpected tensor 'rnn\.\w+_l1'/);
    const omitted = await edited(lm(), (c) => setSpec(c, { ...spec(c), numLayers: undefined }));
    await expect(loadModel(omitted)).rejects.toThrow(/spec has no field 'numLayers'/);
  });

  it('refuses a spec whose sizes need more weights than the file holds, before building it', async () => {
    const huge = await edited(lm(), (c) => setSpec(c, { ...spec(c), hiddenSize: 30000 }));
    const started = performance.now();
    await expect(loadModel(huge)).rejects.toThrow(
      /its spec needs \d+ weights but the file holds \d+/,
    );
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('refuses an appended tensor unless strict is false; missing ones either way', async () => {
    const extra = await edited(lm(), (c) => {
      c.tensors['extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    });
    await expect(loadModel(extra)).rejects.toThrow(/unexpected tensor 'extra\.weight'/);
    const loose = await loadModel(extra, { strict: false });
    expect(loose.spec.numLayers).toBe(2);
    const missing = await edited(lm(), (c) => {
      delete c.tensors['rnn.weight_hh_l1'];
    });
    await expect(loadModel(missing, { strict: false })).rejects.toThrow(
      /missing tensor 'rnn\.weight_hh_l1'/,
    );
  });

  it('names the spec field of the wrong type or value', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ residual: 'yes' }, /residual must be true or false, got "yes"/],
      [{ nonlinearity: 'foo' }, /nonlinearity must be 'tanh' or 'relu', got "foo"/],
      [{ cell: null }, /cell must be 'rnn', 'lstm' or 'gru', got null/],
      [{ dropout: '0.1' }, /dropout must be a finite number/],
      [{ tieWeights: 1 }, /tieWeights must be true or false/],
      [{ numLayers: 2.5 }, /numLayers must be an integer/],
      [{ colour: 'blue' }, /unknown field 'colour'/],
    ];
    for (const [change, message] of cases) {
      const file = await edited(lm(), (c) => setSpec(c, { ...spec(c), ...change }));
      await expect(loadModel(file), JSON.stringify(change)).rejects.toThrow(message);
    }
  });

  it('refuses a dtype relabelled in a file with checksums (F16 as BF16)', async () => {
    const file = fresh();
    await lm().save(file, { dtype: 'float16' });
    const c = await readSafetensors(file);
    const t = c.tensors['decoder.weight'];
    c.tensors['decoder.weight'] = { ...t, dtype: 'BF16' } as typeof t;
    await writeSafetensors(file, c.tensors, c.metadata);
    await expect(loadModel(file)).rejects.toThrow(/tensor 'decoder\.weight' fails its checksum/);
  });
});

describe('finite weights', () => {
  it('refuses NaN and Infinity naming the tensor and index, or loads them on request', async () => {
    const nan = await edited(lm(), (c) => {
      (c.tensors['rnn.weight_ih_l1'].data as Float32Array)[2 * 8 + 3] = NaN;
    });
    await expect(loadModel(nan)).rejects.toThrow(
      /tensor 'rnn\.weight_ih_l1' holds NaN at index \[2, 3\]/,
    );
    const inf = await edited(lm(), (c) => {
      (c.tensors['decoder.bias'].data as Float32Array)[4] = -Infinity;
    });
    await expect(loadModel(inf)).rejects.toThrow(/'decoder\.bias' holds -Infinity at index \[4\]/);
    const loaded = await loadModel(nan, { allowNonFinite: true });
    expect(Number.isNaN(loaded.rnn.weights.data.find((x) => Number.isNaN(x)))).toBe(true);
  });

  it('a model whose logits are all NaN ends generation with an error, not newlines', async () => {
    const m = lm({ numLayers: 1 });
    m.decoder.bias!.data[0] = NaN;
    m.decoder.weight.data.fill(NaN);
    await expect(m.generate({ prompts: ['the'], maxTokens: 5, seed: 1 })).rejects.toThrow(
      /generation failed for prompt 0 after 0 tokens: every logit was NaN/,
    );
    await expect(m.generate({ prompts: ['the'], maxTokens: 5, temperature: 0 })).rejects.toThrow(
      /every logit was NaN/,
    );
    const pieces: string[] = [];
    const stream = async () => {
      for await (const p of m.stream({ prompt: 'the', maxTokens: 5, seed: 1 })) pieces.push(p);
    };
    await expect(stream()).rejects.toThrow(/every logit was NaN/);
    expect(pieces.join('')).toBe('');
  });
});

describe('checksums', () => {
  it('refuses a flipped data byte naming the tensor; a file without checksums loads', async () => {
    const file = fresh();
    await lm().save(file);
    const bytes = fs.readFileSync(file);
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    const c = await readSafetensors(file);
    expect(JSON.parse(c.metadata.checksums).algorithm).toBe('crc32c');
    // Flip one bit in every 997th data byte of a copy: each copy must be refused.
    let refused = 0;
    for (let at = headerEnd; at < bytes.length; at += 997) {
      const bad = Buffer.from(bytes);
      bad[at] ^= 0x10;
      const mutant = fresh();
      fs.writeFileSync(mutant, bad);
      await expect(loadModel(mutant)).rejects.toThrow(/tensor '[\w.]+' fails its checksum/);
      refused++;
    }
    expect(refused).toBeGreaterThan(3);
    const old = await edited(lm(), () => undefined);
    const loaded = await loadModel(old);
    expect(loaded.spec.numLayers).toBe(2);
  });

  it('refuses a tensor added after writing, and any change to the metadata', async () => {
    const added = await edited(
      lm(),
      (c) => {
        c.tensors['zz'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
      },
      true,
    );
    await expect(loadModel(added, { strict: false })).rejects.toThrow(
      /tensor 'zz' has no recorded checksum/,
    );
    const tokenizer = await edited(
      lm(),
      (c) => (c.metadata.tokenizer = c.metadata.tokenizer.replace('"c"', '"q"')),
      true,
    );
    await expect(loadModel(tokenizer)).rejects.toThrow(/its metadata fails its checksum/);
    const spec = await edited(
      lm(),
      (c) => (c.metadata.spec = c.metadata.spec.replace('"dropout":0', '"dropout":0.5')),
      true,
    );
    await expect(loadModel(spec)).rejects.toThrow(/its metadata fails its checksum/);
  });
});

describe('strict seq2seq checkpoints', () => {
  const s2s = () =>
    new Seq2Seq({
      sourceVocab: 9,
      targetVocab: 8,
      embeddingSize: 4,
      hiddenSize: 6,
      bos: 1,
      eos: 2,
      seed: 3,
    });

  it('refuses spec fields of the wrong type, missing fields, non-finite and corrupted weights', async () => {
    const typed = await edited(s2s(), (c) => setSpec(c, { ...spec(c), bidirectional: 'no' }));
    await expect(Seq2Seq.load(typed)).rejects.toThrow(/bidirectional must be true or false/);
    const attention = await edited(s2s(), (c) => setSpec(c, { ...spec(c), attention: 'luong' }));
    await expect(Seq2Seq.load(attention)).rejects.toThrow(/attention must be 'dot', 'general'/);
    const missing = await edited(s2s(), (c) =>
      setSpec(c, { ...spec(c), decoderLayers: undefined }),
    );
    await expect(Seq2Seq.load(missing)).rejects.toThrow(/no field 'decoderLayers'/);
    const nan = await edited(s2s(), (c) => {
      (c.tensors['target_embedding.weight'].data as Float32Array)[5] = NaN;
    });
    await expect(Seq2Seq.load(nan)).rejects.toThrow(
      /'target_embedding\.weight' holds NaN at index \[1, 1\]/,
    );
    await Seq2Seq.load(nan, { allowNonFinite: true });
    const file = fresh();
    await s2s().save(file);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 3] ^= 1;
    fs.writeFileSync(file, bytes);
    await expect(Seq2Seq.load(file)).rejects.toThrow(/fails its checksum/);
  });
});
