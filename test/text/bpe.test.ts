// Byte-level BPE: training rules and bad input, exact round trips of random Unicode (lone
// surrogates, emoji, combining marks, CJK), agreement of the native pre-tokenizer with the GPT-2
// regular expression, streaming decode, tokenizer JSON and Hugging Face tokenizer.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Random } from '../../lib/core/random';
import {
  BpeTokenizer,
  fromHuggingFaceJSON,
  toHuggingFaceJSON,
  tokenizerFromJSON,
} from '../../lib/text';

const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const shakespeare = readFileSync(path.resolve('data', 'tinyshakespeare.txt'), 'utf8');
const sample = shakespeare.slice(0, 200_000);
const dir = mkdtempSync(path.join(tmpdir(), 'rnnkit-bpe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Code point pools the random strings draw from.
const pools: [number, number][] = [
  [0x20, 0x7e], // ASCII
  [0x09, 0x0d], // tabs and newlines
  [0xa0, 0x17f], // Latin-1 and Latin Extended-A (NBSP included)
  [0x300, 0x36f], // combining marks
  [0x4e00, 0x4fff], // CJK
  [0x1f600, 0x1f64f], // emoji (astral: surrogate pairs in JS)
  [0x1f3fb, 0x1f3ff], // skin tones
  [0x200d, 0x200d], // zero-width joiner
  [0xd800, 0xdfff], // lone surrogates (one UTF-16 unit each)
  [0x2000, 0x200a], // Unicode spaces
  [0x10000, 0x10ffff], // anything astral
];

function randomString(rng: Random, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = pools[Math.floor(rng.uniform() * pools.length)];
    const cp = lo + Math.floor(rng.uniform() * (hi - lo + 1));
    s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  }
  return s;
}

describe('BpeTokenizer training', () => {
  it('learns the most frequent pair first, ties to the smaller left id then right id', async () => {
    // Pieces "xy", " xy", " xy": (x,y) occurs 3 times, (' ',x) twice.
    const t = await BpeTokenizer.train('xy xy xy', { vocabSize: 257, minFrequency: 1 });
    expect(Array.from(t.merges)).toEqual([0x78, 0x79]);
    // Pieces "ba", " ab": every pair occurs once; the space (0x20) is the smallest left id.
    const tie = await BpeTokenizer.train('ba ab', { vocabSize: 257, minFrequency: 1 });
    expect(Array.from(tie.merges)).toEqual([0x20, 0x61]);
  });

  it('is deterministic, honours vocabSize and minFrequency, and compresses text', async () => {
    const a = await BpeTokenizer.train(sample, { vocabSize: 800, specials: ['<pad>', '<eos>'] });
    const b = await BpeTokenizer.train(sample, { vocabSize: 800, specials: ['<pad>', '<eos>'] });
    expect(a.size).toBe(800);
    expect(Array.from(a.merges)).toEqual(Array.from(b.merges));
    const rare = await BpeTokenizer.train(sample, { vocabSize: 100_000, minFrequency: 50 });
    expect(rare.size).toBeGreaterThan(256);
    expect(rare.size).toBeLessThan(100_000);
    const ids = a.encode(shakespeare.slice(500_000, 520_000));
    expect(ids.length).toBeLessThan(20_000 / 2);
    expect(a.decode(ids)).toBe(shakespeare.slice(500_000, 520_000));
  });

  it('trains on a file read natively and reports progress up to the total', async () => {
    const file = path.join(dir, 'corpus.txt');
    writeFileSync(file, sample);
    const seen: number[] = [];
    const fromFile = await BpeTokenizer.train(
      { file },
      { vocabSize: 600, onProgress: (done, total) => (expect(total).toBe(344), seen.push(done)) },
    );
    const fromText = await BpeTokenizer.train(sample, { vocabSize: 600 });
    expect(Array.from(fromFile.merges)).toEqual(Array.from(fromText.merges));
    expect(seen.length).toBeGreaterThan(2);
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(seen[seen.length - 1]).toBe(344);
  });

  it('runs off the event loop; an AbortSignal or a throwing onProgress stops it', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const controller = new AbortController();
    const training = BpeTokenizer.train(shakespeare, {
      vocabSize: 20_000,
      minFrequency: 1,
      signal: controller.signal,
      onProgress: (done) => {
        if (done > 0) controller.abort();
      },
    });
    await expect(training).rejects.toMatchObject({ name: 'AbortError' });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    const failing = BpeTokenizer.train(shakespeare, {
      vocabSize: 20_000,
      minFrequency: 1,
      onProgress: () => {
        throw new Error('progress display broke');
      },
    });
    await expect(failing).rejects.toThrow('progress display broke');
    const aborted = new AbortController();
    aborted.abort();
    await expect(
      BpeTokenizer.train('abc', { vocabSize: 300, signal: aborted.signal }),
    ).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('rejects bad input with an error naming the problem', async () => {
    await expect(BpeTokenizer.train('abc', { vocabSize: 255 })).rejects.toThrow(
      /vocabSize 255 is smaller than the byte alphabet/,
    );
    await expect(
      BpeTokenizer.train('abc', { vocabSize: 256, specials: ['<eos>'] }),
    ).rejects.toThrow(/plus 1 specials, so at least 257/);
    await expect(BpeTokenizer.train('', { vocabSize: 300 })).rejects.toThrow(/the corpus is empty/);
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, '');
    await expect(BpeTokenizer.train({ file: empty }, { vocabSize: 300 })).rejects.toThrow(
      /corpus file .*empty.txt is empty/,
    );
    const latin1 = path.join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.from('caf\xe9 au lait', 'latin1'));
    await expect(BpeTokenizer.train({ file: latin1 }, { vocabSize: 300 })).rejects.toThrow(
      /latin1.txt: the text is not valid UTF-8: the sequence at offset 3 \(byte 0xE9, line 1\)/,
    );
    const binary = path.join(dir, 'binary.bin');
    writeFileSync(binary, Uint8Array.of(0x61, 0, 0x62));
    await expect(BpeTokenizer.train({ file: binary }, { vocabSize: 300 })).rejects.toThrow(
      /binary.bin is not text: NUL byte at offset 1/,
    );
    await expect(
      BpeTokenizer.train({ file: path.join(dir, 'missing.txt') }, { vocabSize: 300 }),
    ).rejects.toThrow(/cannot read the corpus file .*missing.txt/);
    await expect(BpeTokenizer.train('abc', { vocabSize: 300, minFrequency: 0 })).rejects.toThrow(
      /minFrequency must be an integer >= 1/,
    );
    expect(() => new BpeTokenizer([0, 256])).toThrow(/merge 0 uses 256/);
    expect(() => new BpeTokenizer([1])).toThrow(/pairs/);
  });
});

describe('BpeTokenizer encoding', () => {
  let tokenizer: BpeTokenizer;
  const trained = BpeTokenizer.train(sample, {
    vocabSize: 1000,
    specials: ['<bos>', '<eos>'],
  }).then((t) => (tokenizer = t));

  it('round-trips random Unicode exactly, lone surrogates included', async () => {
    await trained;
    const rng = new Random(16);
    for (let i = 0; i < 400; i++) {
      const s = randomString(rng, 1 + Math.floor(rng.uniform() * 40));
      const ids = tokenizer.encode(s);
      expect(ids.every((id) => id >= 2 && id < tokenizer.size)).toBe(true);
      expect(tokenizer.decode(ids)).toBe(s);
    }
    for (const s of ['\uD800', 'a\uDFFFb', '\uDBFF\uDBFF', '👩‍👩‍👧', 'e\u0301', '漢字かな', ' ', '']) {
      expect(tokenizer.decode(tokenizer.encode(s))).toBe(s);
    }
  });

  it('splits text where the GPT-2 regular expression does', async () => {
    await trained;
    const rng = new Random(7);
    const texts = [sample.slice(0, 5000), "I'm sure they've said 'twas   so.\n\n  ok  "];
    for (let i = 0; i < 100; i++)
      texts.push(randomString(rng, 30) + ' the ' + randomString(rng, 5));
    for (const text of texts) {
      const pieces = Array.from(text.matchAll(GPT2), (m) => m[0]);
      expect(pieces.join('')).toBe(text);
      const separately = pieces.flatMap((p) => Array.from(tokenizer.encode(p)));
      expect(Array.from(tokenizer.encode(text))).toEqual(separately);
    }
  });

  it('keeps specials out of text and streams whole characters only', async () => {
    await trained;
    expect(tokenizer.specialId('<eos>')).toBe(1);
    expect(Array.from(tokenizer.encode('<eos>'))).not.toContain(1);
    expect(tokenizer.decode([0, ...tokenizer.encode('hi'), 1])).toBe('hi');
    const ids = tokenizer.encode('é😀'); // bytes c3 a9 f0 9f 98 80, no merges across them here
    const bytes = Array.from(ids).flatMap((id) => Array.from(tokenizer.tokenBytes(id)));
    expect(bytes).toEqual([0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]);
    for (let k = 0; k <= ids.length; k++) {
      const streamed = tokenizer.decode(ids.subarray(0, k), { stream: true });
      expect('é😀'.startsWith(streamed)).toBe(true);
      expect(streamed).not.toContain('\uFFFD');
    }
    expect(tokenizer.decode(ids.subarray(0, ids.length - 1))).toBe('é\uFFFD');
    expect(() => tokenizer.decode([tokenizer.size])).toThrow(/ids\[0\] is 1000/);
    expect(() => tokenizer.tokenBytes(-1)).toThrow(/tokenBytes: id -1 is not an integer id/);
  });

  it('serialises through tokenizer JSON and Hugging Face tokenizer.json', async () => {
    await trained;
    const text = shakespeare.slice(300_000, 302_000) + ' 😀 \uD800';
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tokenizer.toJSON())));
    expect(back.kind).toBe('bpe');
    expect(Array.from(back.encode(text))).toEqual(Array.from(tokenizer.encode(text)));
    const hf = JSON.parse(JSON.stringify(toHuggingFaceJSON(tokenizer)));
    expect(hf.model.type).toBe('BPE');
    expect(hf.model.vocab['Ġthe']).toBeGreaterThan(257);
    expect(hf.model.merges.length).toBe(1000 - 258);
    expect(hf.added_tokens.map((a: { content: string }) => a.content)).toEqual(['<bos>', '<eos>']);
    const fromHf = fromHuggingFaceJSON(hf);
    expect(Array.from(fromHf.merges)).toEqual(Array.from(tokenizer.merges));
    expect(Array.from(fromHf.encode(text))).toEqual(Array.from(tokenizer.encode(text)));
    expect(() => fromHuggingFaceJSON({ ...hf, model: { ...hf.model, type: 'WordPiece' } })).toThrow(
      /the model is "WordPiece"; rnnkit reads byte-level BPE models only/,
    );
    expect(() => fromHuggingFaceJSON({ ...hf, pre_tokenizer: { type: 'Whitespace' } })).toThrow(
      /pre_tokenizer is "Whitespace"/,
    );
    const swapped = { ...hf.model.vocab, a: hf.model.vocab.b, b: hf.model.vocab.a };
    expect(() => fromHuggingFaceJSON({ ...hf, model: { ...hf.model, vocab: swapped } })).toThrow(
      /byte token "a" has id 100, expected 99/,
    );
  });
});
