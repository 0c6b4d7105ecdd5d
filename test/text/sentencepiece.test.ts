// SentencePiece parity: models trained by Debian's spm_train (unigram and BPE, nmt_nfkc and
// identity normalisation, byte fallback), then every line of a held-out text encoded by rnnkit and
// by spm_encode, and decoded by rnnkit and by spm_decode. CI installs the `sentencepiece` package.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SentencePieceTokenizer, tokenizerFromJSON } from '../../lib/text';

const hasSpm = spawnSync('spm_train', ['--help']).error === undefined;
if (!hasSpm && process.env.CI) {
  throw new Error('CI must install the sentencepiece package (spm_train, spm_encode, spm_decode)');
}

const lines = readFileSync(path.resolve('data', 'tinyshakespeare.txt'), 'utf8').split('\n');
// Lines the training text never saw: accents, CJK, emoji, compatibility characters that NFKC
// rewrites, runs of spaces, tabs, leading and trailing blanks, and characters no model knows.
const unusual = [
  'Zürich, Köln und Genève — naïve café façade',
  '東京タワーと大阪城 ☃ snowman',
  'emoji 😀👍🏽 and flags 🇩🇪 and ZWJ 👩‍👩‍👧',
  'ﬁne ﬂour, ① ② ③, ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ, ½ and ™',
  '   leading spaces and trailing spaces   ',
  'many     inner      spaces\tand\ttabs',
  'combining: e\u0301 a\u0308 o\u0302\u0323',
  'Ελληνικά και русский текст',
  'KING HENRY V: Once more unto the breach, dear friends, once more;',
  '',
  '\u2581 already has the space symbol',
  '<s> and </s> and <unk> as plain text',
];
const heldOut = [...lines.slice(30000, 30400), ...unusual];

let dir = '';
const models: Record<string, SentencePieceTokenizer> = {};
const kinds = {
  unigram: ['--model_type=unigram'],
  bpe: ['--model_type=bpe'],
  'unigram-byte-fallback': ['--model_type=unigram', '--byte_fallback=true'],
  'bpe-identity': ['--model_type=bpe', '--normalization_rule_name=identity'],
  'unigram-identity-no-dummy': [
    '--model_type=unigram',
    '--normalization_rule_name=identity',
    '--add_dummy_prefix=false',
    '--remove_extra_whitespaces=false',
  ],
};

function spm(tool: string, args: string[], input: string): string[] {
  const out = execFileSync(tool, args, { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  return out.split('\n').slice(0, -1);
}

describe.skipIf(!hasSpm)('SentencePieceTokenizer against spm_encode', () => {
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rnnkit-spm-'));
    const corpus = path.join(dir, 'corpus.txt');
    writeFileSync(corpus, [...lines.slice(0, 6000), ...unusual.slice(0, 2)].join('\n'));
    for (const [name, args] of Object.entries(kinds)) {
      execFileSync('spm_train', [
        `--input=${corpus}`,
        `--model_prefix=${path.join(dir, name)}`,
        '--vocab_size=600',
        '--character_coverage=0.9995',
        '--num_threads=1',
        '--minloglevel=2',
        ...args,
      ]);
      models[name] = SentencePieceTokenizer.load(path.join(dir, `${name}.model`));
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const name of Object.keys(kinds)) {
    it(`${name}: identical ids and text on every held-out line`, () => {
      const model = path.join(dir, `${name}.model`);
      const want = spm(
        'spm_encode',
        [`--model=${model}`, '--output_format=id'],
        heldOut.join('\n') + '\n',
      );
      expect(want.length).toBe(heldOut.length);
      const tok = models[name];
      expect(tok.modelType).toBe(name.startsWith('bpe') ? 'bpe' : 'unigram');
      const got = heldOut.map((line) => Array.from(tok.encode(line, { unknown: 'map' })).join(' '));
      heldOut.forEach((line, i) => expect([line, got[i]]).toEqual([line, want[i]]));
      const decoded = spm(
        'spm_decode',
        [`--model=${model}`, '--input_format=id'],
        want.join('\n') + '\n',
      );
      const ours = want.map((ids) => tok.decode(ids === '' ? [] : ids.split(' ').map(Number)));
      ours.forEach((text, i) => expect([want[i], text]).toEqual([want[i], decoded[i]]));
    });
  }

  it('knows unknown characters: an error by default, the unknown piece on request', () => {
    const tok = models.unigram;
    expect(() => tok.encode('snow ☃ man')).toThrow(/"☃" is not in the SentencePiece vocabulary/);
    expect(Array.from(tok.encode('☃☃', { unknown: 'map' }))).toContain(tok.unknownId);
    expect(
      models['unigram-byte-fallback'].decode(models['unigram-byte-fallback'].encode('☃ 😀')),
    ).toBe('☃ 😀');
  });

  it('serialises through tokenizer JSON and names its control pieces', () => {
    const tok = models.bpe;
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe('sentencepiece');
    expect(Array.from(back.encode(heldOut[3]))).toEqual(Array.from(tok.encode(heldOut[3])));
    expect(tok.specials).toEqual(['<s>', '</s>']);
    expect(tok.specialId('<bos>')).toBe(tok.specialId('<s>'));
    expect(tok.specialId('<eos>')).toBe(2);
    expect(() => tok.specialId('<pad>')).toThrow(/no special token "<pad>"/);
    expect(tok.idToPiece(tok.unknownId)).toBe('<unk>');
    expect(() => tok.idToPiece(tok.size)).toThrow(/idToPiece: id 600 is not an integer id/);
  });

  it('streams whole characters from byte pieces', () => {
    const tok = models['unigram-byte-fallback'];
    const ids = tok.encode('a ☃');
    const partial = ids.slice(0, ids.length - 1);
    expect(tok.decode(partial, { stream: true })).toBe('a ');
    expect(tok.decode(partial)).toBe('a \uFFFD\uFFFD');
  });
});

describe('SentencePieceTokenizer bad input', () => {
  it('names a file that is not a SentencePiece model', () => {
    expect(
      () => new SentencePieceTokenizer(new TextEncoder().encode('hello world'), 'x.model'),
    ).toThrow(/x.model is not a usable SentencePiece model/);
    expect(() => new SentencePieceTokenizer(new Uint8Array(0), 'empty.model')).toThrow(
      /empty.model is not a usable SentencePiece model: it holds no pieces/,
    );
  });

  it.skipIf(!hasSpm)('names a truncated model and an unsupported model type', () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'rnnkit-spm-bad-'));
    try {
      const corpus = path.join(tmp, 'c.txt');
      writeFileSync(corpus, lines.slice(0, 2000).join('\n'));
      for (const type of ['unigram', 'word']) {
        execFileSync('spm_train', [
          `--input=${corpus}`,
          `--model_prefix=${path.join(tmp, type)}`,
          '--vocab_size=300',
          `--model_type=${type}`,
          '--num_threads=1',
          '--minloglevel=2',
        ]);
      }
      const whole = readFileSync(path.join(tmp, 'unigram.model'));
      for (const cut of [whole.length - 7, Math.floor(whole.length / 2), 3]) {
        expect(() => new SentencePieceTokenizer(whole.subarray(0, cut), 'cut.model')).toThrow(
          /cut.model is not a usable SentencePiece model/,
        );
      }
      expect(() => SentencePieceTokenizer.load(path.join(tmp, 'word.model'))).toThrow(
        /model type 'word' is not supported; rnnkit reads 'unigram' and 'bpe' models/,
      );
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
