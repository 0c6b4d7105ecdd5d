import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CharTokenizer,
  tokenizerFromJSON,
  validateCorpus,
  WordTokenizer,
  type Tokenizer,
} from '../../lib/text';

// Tiny Shakespeare lives in data/ once fetched; RNNKIT_DATA_DIR points elsewhere.
const shakespeare = [
  path.resolve('data', 'tinyshakespeare.txt'),
  path.join(process.env.RNNKIT_DATA_DIR ?? '', 'tinyshakespeare.txt'),
].find((candidate) => existsSync(candidate));

function roundTrip(tokenizer: Tokenizer): Tokenizer {
  return tokenizerFromJSON(JSON.parse(JSON.stringify(tokenizer.toJSON())));
}

describe('CharTokenizer', () => {
  it('sorts distinct characters and puts <unk> last', () => {
    const tokenizer = CharTokenizer.fromText('hello');
    expect(tokenizer.kind).toBe('char');
    expect(tokenizer.toJSON().tokens).toEqual(['e', 'h', 'l', 'o']);
    expect(tokenizer.size).toBe(5);
    expect(tokenizer.unknownId).toBe(4);
    expect(Array.from(tokenizer.encode('hello'))).toEqual([1, 0, 2, 2, 3]);
    expect(tokenizer.decode(tokenizer.encode('hole'))).toBe('hole');
  });

  it.skipIf(shakespeare === undefined)(
    'has 66 ids for Tiny Shakespeare: 65 characters and <unk> (needs data/tinyshakespeare.txt)',
    () => {
      const text = validateCorpus(readFileSync(shakespeare ?? ''), 'tinyshakespeare.txt');
      const tokenizer = CharTokenizer.fromText(text);
      expect(tokenizer.size).toBe(66);
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    },
  );

  it('rejects unknown characters by default, naming the character, code point and index', () => {
    const tokenizer = CharTokenizer.fromText('abc');
    expect(() => tokenizer.encode('abxc')).toThrow(
      `character "x" (U+0078) at index 2 is not in the char vocabulary; pass { unknown: 'map' }`,
    );
    expect(() => tokenizer.encode('ab\n')).toThrow('character "\\n" (U+000A) at index 2');
  });

  it("maps unknown characters to <unk> with { unknown: 'map' }, decoded as U+FFFD", () => {
    const tokenizer = CharTokenizer.fromText('abc');
    const ids = tokenizer.encode('axb', { unknown: 'map' });
    expect(Array.from(ids)).toEqual([0, tokenizer.unknownId, 1]);
    expect(tokenizer.decode(ids)).toBe('a\uFFFDb');
  });

  it('works in code points: astral characters are one token, in code point order', () => {
    const text = 'a😀b\uE000𝄞 ü';
    const tokenizer = CharTokenizer.fromText(text);
    expect(tokenizer.toJSON().tokens).toEqual([' ', 'a', 'b', 'ü', '\uE000', '𝄞', '😀']);
    expect(tokenizer.encode(text)).toHaveLength(7);
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    expect(() => tokenizer.encode('a😀🚀')).toThrow('character "🚀" (U+1F680) at index 3');
  });

  it('keeps lone surrogates as their own tokens', () => {
    const text = 'x\uD800y';
    const tokenizer = CharTokenizer.fromText(text);
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('rejects empty text, a bad unknown policy and ids out of range', () => {
    expect(() => CharTokenizer.fromText('')).toThrow('empty text');
    const tokenizer = CharTokenizer.fromText('ab');
    expect(() => tokenizer.encode('a', { unknown: 'skip' as 'map' })).toThrow(
      `options.unknown must be 'error' or 'map', got "skip"`,
    );
    expect(() => tokenizer.decode([0, 99])).toThrow(
      'ids[1] is 99, expected an integer id in [0, 3)',
    );
    expect(() => tokenizer.decode([0.5])).toThrow(RangeError);
  });

  it('reserves specials at the start, never produces them from text and drops them in decode', () => {
    const tokenizer = CharTokenizer.fromText('ab', { specials: ['<pad>', '<bos>', '<eos>'] });
    expect(tokenizer.size).toBe(6);
    expect(tokenizer.specials).toEqual(['<pad>', '<bos>', '<eos>']);
    expect(tokenizer.specialId('<pad>')).toBe(0);
    expect(tokenizer.specialId('<eos>')).toBe(2);
    expect(Array.from(tokenizer.encode('ba'))).toEqual([4, 3]);
    expect(tokenizer.unknownId).toBe(5);
    expect(tokenizer.decode([1, 3, 4, 5, 2, 0])).toBe('ab\uFFFD');
    expect(() => tokenizer.encode('<eos>')).toThrow('character "<" (U+003C) at index 0');
    expect(() => tokenizer.specialId('<sep>')).toThrow(
      'no special token "<sep>" (this tokenizer has: <pad>, <bos>, <eos>)',
    );
    expect(() => CharTokenizer.fromText('ab').specialId('<pad>')).toThrow('has: none');
    expect(() => CharTokenizer.fromText('ab', { specials: ['<s>', '<s>'] })).toThrow(
      'special "<s>" is listed twice',
    );
  });

  it('survives toJSON and tokenizerFromJSON with the same ids', () => {
    const tokenizer = CharTokenizer.fromText('Grüße, 🌍!', { specials: ['<pad>'] });
    const restored = roundTrip(tokenizer);
    expect(restored).toBeInstanceOf(CharTokenizer);
    expect(restored.toJSON()).toEqual(tokenizer.toJSON());
    expect(restored.encode('Grüße, 🌍!')).toEqual(tokenizer.encode('Grüße, 🌍!'));
  });
});

describe('WordTokenizer', () => {
  it('splits into words with their leading space, punctuation and whitespace, and round-trips', () => {
    const text = 'Hello, world!\n\n  Foo  bar.\tBaz (qux) -- end\r\n';
    const tokenizer = WordTokenizer.fromText(text);
    expect(tokenizer.kind).toBe('word');
    expect(tokenizer.toJSON().tokens).toEqual(
      expect.arrayContaining(['Hello', ',', ' world', '!', '\n', ' ', ' Foo', '\t', ' (', ')']),
    );
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('keeps Unicode words whole (umlauts, ß, combining marks, digits)', () => {
    const text = 'Müller läuft über die Straße. Noe\u0308l hat 42 Äpfel.';
    const tokenizer = WordTokenizer.fromText(text);
    const words = tokenizer.toJSON().tokens;
    expect(words).toEqual(
      expect.arrayContaining([
        'Müller',
        ' läuft',
        ' über',
        ' Straße',
        ' Noe\u0308l',
        ' 42',
        ' Äpfel',
      ]),
    );
    expect(tokenizer.encode(text)).toHaveLength(11);
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('keeps inner apostrophes in words and treats emoji as symbols', () => {
    const text = "don't 'tis o\u2019er 🦀🦀 ok";
    const tokenizer = WordTokenizer.fromText(text);
    expect(tokenizer.toJSON().tokens).toEqual(
      expect.arrayContaining(["don't", " '", 'tis', ' o\u2019er', ' 🦀', '🦀', ' ok']),
    );
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('orders the vocabulary by frequency, ties in code unit order, deterministically', () => {
    const text = 'the cat the dog the cat';
    const tokenizer = WordTokenizer.fromText(text);
    expect(tokenizer.toJSON().tokens).toEqual([' cat', ' the', ' dog', 'the']);
    expect(WordTokenizer.fromText(text).toJSON()).toEqual(tokenizer.toJSON());
    expect(WordTokenizer.fromText(text, { minCount: 2 }).toJSON().tokens).toEqual([' cat', ' the']);
  });

  it('limits the vocabulary to maxVocab ids, <unk> and specials included', () => {
    const tokenizer = WordTokenizer.fromText('the cat the dog the cat', { maxVocab: 3 });
    expect(tokenizer.size).toBe(3);
    expect(tokenizer.toJSON().tokens).toEqual([' cat', ' the']);
    expect(() => tokenizer.encode('the cat')).toThrow(
      `token "the" at index 0 is not in the word vocabulary; pass { unknown: 'map' } to encode it as the unknown token (id 2)`,
    );
    const ids = tokenizer.encode('the dog the cat', { unknown: 'map' });
    expect(Array.from(ids)).toEqual([2, 2, 1, 0]);
    expect(tokenizer.decode(ids)).toBe('\uFFFD\uFFFD the cat');

    const withSpecials = WordTokenizer.fromText('a b b', {
      maxVocab: 4,
      specials: ['<pad>', '<eos>'],
    });
    expect(withSpecials.size).toBe(4);
    expect(withSpecials.toJSON().tokens).toEqual([' b']);
    expect(() =>
      WordTokenizer.fromText('a b', { maxVocab: 3, specials: ['<pad>', '<eos>'] }),
    ).toThrow('it must be at least 4');
    expect(() => WordTokenizer.fromText('a b', { maxVocab: 0 })).toThrow(
      'maxVocab must be a positive integer, got 0',
    );
    expect(() => WordTokenizer.fromText('a b', { minCount: 3 })).toThrow('occurs 3 times');
  });

  it('lowercases when asked, both when building and when encoding', () => {
    const tokenizer = WordTokenizer.fromText('The THE the', { lowercase: true });
    expect(tokenizer.toJSON().tokens).toEqual([' the', 'the']);
    expect(tokenizer.decode(tokenizer.encode('THE The'))).toBe('the the');
    expect(roundTrip(tokenizer).decode(tokenizer.encode('tHe'))).toBe('the');
  });

  it('survives toJSON and tokenizerFromJSON with the same ids', () => {
    const tokenizer = WordTokenizer.fromText('to be, or not to be', {
      specials: ['<pad>', '<bos>', '<eos>'],
      lowercase: true,
    });
    const restored = roundTrip(tokenizer);
    expect(restored).toBeInstanceOf(WordTokenizer);
    expect(restored.toJSON()).toEqual(tokenizer.toJSON());
    expect(restored.specialId('<eos>')).toBe(2);
    expect(restored.encode('To be or not')).toEqual(tokenizer.encode('To be or not'));
  });

  it.skipIf(shakespeare === undefined)(
    'round-trips Tiny Shakespeare (needs data/tinyshakespeare.txt)',
    () => {
      const text = readFileSync(shakespeare ?? '', 'utf8');
      const tokenizer = WordTokenizer.fromText(text, { maxVocab: 5000 });
      expect(tokenizer.size).toBe(5000);
      const ids = tokenizer.encode(text, { unknown: 'map' });
      expect(ids.length).toBeLessThan(text.length / 3);
      const full = WordTokenizer.fromText(text);
      expect(full.decode(full.encode(text))).toBe(text);
    },
  );
});

describe('tokenizerFromJSON', () => {
  const valid = { kind: 'word', version: 1, specials: [], tokens: ['a', ' b'], lowercase: false };

  it.each([
    ['null', null, 'tokenizer JSON must be an object, got null'],
    ['an array', [], 'tokenizer JSON must be an object, got an array'],
    ['a newer version', { ...valid, version: 2 }, 'unsupported version 2, expected 1'],
    [
      'an unknown kind',
      { ...valid, kind: 'wordpiece' },
      `unknown kind "wordpiece", expected 'char', 'word', 'bpe' or 'sentencepiece'`,
    ],
    [
      'bpe merges that are not ids',
      { kind: 'bpe', version: 1, specials: [], merges: ['a', 'b'] },
      'merges must be an array of integer ids',
    ],
    [
      'a sentencepiece model that is not base64 text',
      { kind: 'sentencepiece', version: 1, model: 7 },
      'model must be a base64 string, got number',
    ],
    [
      'tokens that are not an array',
      { ...valid, tokens: 'ab' },
      'tokens must be an array, got string',
    ],
    [
      'a token that is not a string',
      { ...valid, tokens: ['a', 7] },
      'tokens[1] must be a string, got number',
    ],
    [
      'specials missing',
      { ...valid, specials: undefined },
      'specials must be an array, got undefined',
    ],
    ['lowercase missing', { ...valid, lowercase: 'no' }, 'lowercase must be a boolean, got string'],
    ['a duplicate token', { ...valid, tokens: ['a', 'a'] }, 'token "a" is listed twice'],
    [
      'a word token the splitter would cut',
      { ...valid, tokens: ['a b'] },
      'tokens[0] "a b" cannot be a token: the word splitter cuts it into 2 pieces',
    ],
    [
      'a char token of two characters',
      { kind: 'char', version: 1, specials: [], tokens: ['ab'] },
      'tokens[0] "ab" cannot be a token: it has 2 code points, expected 1',
    ],
    [
      'an empty special',
      { kind: 'char', version: 1, specials: [''], tokens: ['a'] },
      'specials[0] must be a non-empty string',
    ],
  ])('rejects %s', (_what, json, message) => {
    expect(() => tokenizerFromJSON(json)).toThrow(message);
  });
});

describe('validateCorpus', () => {
  it('decodes UTF-8 and drops a byte order mark', () => {
    expect(validateCorpus(Buffer.from('Grüße 😀\n', 'utf8'), 'a.txt')).toBe('Grüße 😀\n');
    expect(validateCorpus(Buffer.from('\uFEFFhi', 'utf8'), 'a.txt')).toBe('hi');
    expect(validateCorpus(new TextEncoder().encode('plain'), 'a.txt')).toBe('plain');
  });

  it('rejects an empty corpus', () => {
    expect(() => validateCorpus(Buffer.alloc(0), 'train.txt')).toThrow('corpus train.txt is empty');
    expect(() => validateCorpus(Buffer.from([0xef, 0xbb, 0xbf]), 'bom.txt')).toThrow(
      'corpus bom.txt is empty',
    );
  });

  it('rejects binary input, naming the NUL byte', () => {
    expect(() => validateCorpus(Buffer.from('ab\ncd\0ef'), 'model.bin')).toThrow(
      'corpus model.bin is not text: NUL byte at offset 5 (line 2)',
    );
    expect(() => validateCorpus(Buffer.from('hi', 'utf16le'), 'wide.txt')).toThrow(
      'UTF-16/UTF-32 text',
    );
  });

  it('rejects invalid UTF-8, naming where decoding fails', () => {
    expect(() => validateCorpus(Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x63]), 'latin1.txt')).toThrow(
      'corpus latin1.txt is not valid UTF-8: decoding fails at offset 3 (byte 0xff, line 2)',
    );
    expect(() => validateCorpus(Buffer.from([0x61, 0xe2, 0x82, 0x41]), 'cut.txt')).toThrow(
      'decoding fails at offset 3 (byte 0x41, line 1)',
    );
    expect(() => validateCorpus(Buffer.from([0x61, 0x62, 0xe2, 0x82]), 'end.txt')).toThrow(
      'corpus end.txt is not valid UTF-8: it ends in the middle of a multi-byte character',
    );
  });
});
