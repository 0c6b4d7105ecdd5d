// Subword tokenizers everywhere a tokenizer goes: language models and seq2seq models with BPE and
// SentencePiece vocabularies through checkpoints, ONNX export, OnnxGenerator, the server and the
// CLI; streaming that never splits a character; stop strings found across token boundaries.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpeTokenizer,
  LanguageModel,
  OnnxGenerator,
  OnnxSeq2Seq,
  Seq2Seq,
  SentencePieceTokenizer,
  exportOnnx,
  exportSeq2SeqOnnx,
  startServer,
  type Tokenizer,
} from '../dist/index.js';
import { streamText, type TokenLoop } from '../dist/decode/token-loop.js';
import { serveCli } from './serve-cli';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-subword-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const shakespeare = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
const text = shakespeare.slice(0, 40_000) + '\nCafé 😀 漢字 naïve — “quoted”\n';
const hasSpm = spawnSync('spm_train', ['--help']).error === undefined;

// A token loop that plays back fixed tokens one per tick and stops when the cancel flag is set;
// it records how many it gave, so a test can see that a stop ended it early.
function playback(tokens: number[]): { loop: TokenLoop; given: () => number } {
  let given = 0;
  const loop: TokenLoop = async (_prompts, options, _stops, cancel, onTokens) => {
    const out = new Int32Array(options.maxTokens);
    for (; given < Math.min(tokens.length, options.maxTokens); given++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (Atomics.load(cancel, 0) !== 0) break;
      out[given] = tokens[given];
      onTokens?.(given, Int32Array.of(0), Int32Array.of(tokens[given]));
    }
    return { tokens: out, lengths: Int32Array.of(given), finish: Int32Array.of(0) };
  };
  return { loop, given: () => given };
}

async function collect(stream: AsyncGenerator<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const piece of stream) pieces.push(piece);
  return pieces;
}

/** Runs the CLI in the test directory; it must succeed. */
function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  expect(r.stderr + r.stdout).not.toMatch(/Error/);
  expect(r.status).toBe(0);
  return r.stdout;
}

/** The byte tokens (no merges) that spell `s`. */
function byteIds(tokenizer: Tokenizer, s: string): number[] {
  const offset = tokenizer.specials.length;
  return Array.from(new TextEncoder().encode(s), (b) => b + offset);
}

describe('language models with a BPE tokenizer', () => {
  let tokenizer: BpeTokenizer;
  let model: LanguageModel;
  beforeAll(async () => {
    tokenizer = await BpeTokenizer.train(text, { vocabSize: 500 });
    model = new LanguageModel({ tokenizer, hiddenSize: 32, embeddingSize: 16, seed: 3 });
    await model.fit(text, { steps: 8, batchSize: 8, seqLength: 32 });
  });

  it('carries the tokenizer through checkpoints, ONNX, OnnxGenerator and the server', async () => {
    const options = { prompts: ['ROMEO:', 'Café 😀'], temperature: 0.9, seed: 4, maxTokens: 30 };
    const want = await model.generate(options);
    const saved = path.join(tmp, 'lm.safetensors');
    await model.save(saved);
    const loaded = await LanguageModel.load(saved);
    expect(loaded.tokenizer?.kind).toBe('bpe');
    expect(await loaded.generate(options)).toEqual(want);
    const onnxFile = path.join(tmp, 'lm.onnx');
    await exportOnnx(model, onnxFile, { kind: 'sequence' });
    const onnx = await OnnxGenerator.load(onnxFile, { threads: 1 });
    try {
      expect(onnx.tokenizer.kind).toBe('bpe');
      expect(await onnx.generate(options)).toEqual(want);
      const server = await startServer(onnx, { port: 0 });
      try {
        const r = await fetch(`${server.url}/v1/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            prompts: options.prompts,
            temperature: 0.9,
            seed: 4,
            max_tokens: 30,
          }),
        });
        expect(r.status).toBe(200);
        const body = (await r.json()) as { completions: string[] };
        expect(body.completions).toEqual(want);
      } finally {
        await server.close();
      }
    } finally {
      await onnx.close();
    }
  });

  it('streams what generate returns, in pieces that never split a character', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const options = { prompt: 'Café', temperature: 1.5, seed, maxTokens: 60 };
      const [whole] = await model.generate({ ...options, prompts: [options.prompt] });
      const pieces = await collect(model.stream(options));
      expect(pieces.join('')).toBe(whole);
      for (const piece of pieces) expect(piece.isWellFormed()).toBe(true);
    }
  });

  it('holds back a character until its last byte token comes', async () => {
    const tokens = byteIds(tokenizer, 'a😀b');
    const { loop } = playback(tokens);
    const pieces = await collect(streamText(loop, tokenizer, { prompt: 'x', maxTokens: 10 }));
    expect(pieces.join('')).toBe('a😀b');
    expect(pieces).not.toContain('\uFFFD');
    expect(pieces.every((p) => p.isWellFormed())).toBe(true);
  });

  it('finds a stop string however the tokens split it, and ends the loop there', async () => {
    // "wor" + "ld" as single bytes: the stop "o w" spans three tokens, none of them its own.
    const tokens = byteIds(tokenizer, 'Hello world and more text after the stop');
    const { loop, given } = playback(tokens);
    const pieces = await collect(
      streamText(loop, tokenizer, { prompt: 'x', maxTokens: 100, stop: ['o w'] }),
    );
    expect(pieces.join('')).toBe('Hell');
    expect(given()).toBeLessThan(tokens.length);
    const spelled = byteIds(tokenizer, 'o w');
    expect(Array.from(tokenizer.encode('o w'))).not.toEqual(spelled);
  });

  it('repetition controls act on the subword tokens', async () => {
    const [text1] = await model.generate({
      prompts: ['the'],
      temperature: 0,
      maxTokens: 40,
      noRepeatNgramSize: 1,
    });
    const ids = Array.from(tokenizer.encode(text1));
    expect(new Set(ids).size).toBeGreaterThan(ids.length * 0.8);
  });
});

describe('seq2seq models with subword tokenizers', () => {
  const pairs = shakespeare
    .split('\n')
    .filter((l) => l.length > 8 && l.length < 40)
    .slice(0, 300)
    .map((l) => ({ source: l, target: l.toUpperCase() }));

  async function roundTrip(model: Seq2Seq, name: string, kind: string): Promise<void> {
    await model.fit(pairs, { steps: 4, batchSize: 16 });
    const want = await model.translate(['First Citizen', 'Café 😀'], { beam: 2, maxLength: 12 });
    const saved = path.join(tmp, `${name}.safetensors`);
    await model.save(saved);
    const loaded = await Seq2Seq.load(saved);
    expect(loaded.sourceTokenizer?.kind).toBe(kind);
    expect(loaded.targetTokenizer?.kind).toBe(kind);
    expect(
      await loaded.translate(['First Citizen', 'Café 😀'], { beam: 2, maxLength: 12 }),
    ).toEqual(want);
    const onnxFile = path.join(tmp, `${name}.onnx`);
    await exportSeq2SeqOnnx(model, onnxFile);
    const onnx = await OnnxSeq2Seq.load(onnxFile, { threads: 1 });
    try {
      expect(onnx.targetTokenizer.kind).toBe(kind);
      const got = await onnx.translate(['First Citizen', 'Café 😀'], { beam: 2, maxLength: 12 });
      expect(got.map((t) => t.text)).toEqual(want.map((t) => t.text));
    } finally {
      await onnx.close();
    }
  }

  it('trains, saves, exports and translates with BPE vocabularies', async () => {
    const sources = pairs.map((p) => p.source).join('\n') + '\nCafé 😀';
    const targets = pairs.map((p) => p.target).join('\n');
    const model = new Seq2Seq({
      sourceTokenizer: await BpeTokenizer.train(sources, { vocabSize: 400 }),
      targetTokenizer: await BpeTokenizer.train(targets, {
        vocabSize: 400,
        specials: ['<pad>', '<bos>', '<eos>'],
      }),
      hiddenSize: 32,
      embeddingSize: 16,
      seed: 2,
    });
    await roundTrip(model, 'seq2seq-bpe', 'bpe');
  });

  it.skipIf(!hasSpm)(
    'trains, saves, exports and translates with a SentencePiece model',
    async () => {
      const corpus = path.join(tmp, 'pairs.txt');
      fs.writeFileSync(corpus, pairs.flatMap((p) => [p.source, p.target]).join('\n'));
      execFileSync('spm_train', [
        `--input=${corpus}`,
        `--model_prefix=${path.join(tmp, 'pairs')}`,
        '--vocab_size=500',
        '--byte_fallback=true',
        '--num_threads=1',
        '--minloglevel=2',
      ]);
      const spm = SentencePieceTokenizer.load(path.join(tmp, 'pairs.model'));
      const model = new Seq2Seq({
        sourceTokenizer: spm,
        targetTokenizer: spm,
        hiddenSize: 32,
        embeddingSize: 16,
        seed: 2,
      });
      expect(model.spec.bos).toBe(spm.specialId('<s>'));
      await roundTrip(model, 'seq2seq-spm', 'sentencepiece');
      const tsv = pairs.map((p) => `${p.source}\t${p.target}`).join('\n');
      fs.writeFileSync(path.join(tmp, 'spm-pairs.tsv'), tsv);
      cli(
        `seq2seq train --pairs spm-pairs.tsv --tokenizer spm:pairs.model --steps 2 --hidden 16 --embedding 8 --test-size 20 --out cli-spm.safetensors`.split(
          ' ',
        ),
      );
      const trained = await Seq2Seq.load(path.join(tmp, 'cli-spm.safetensors'));
      expect(trained.sourceTokenizer?.kind).toBe('sentencepiece');
      expect(trained.targetTokenizer?.kind).toBe('sentencepiece');
    },
  );
});

describe('the CLI with --tokenizer bpe', () => {
  // Arguments of a short language-model training run on corpus.txt with a BPE vocabulary.
  const lmTrain = (vocabSize: number) =>
    `train --data corpus.txt --tokenizer bpe --vocab-size ${vocabSize} --steps 3 --hidden 16 --embedding 8 --seq-length 16 --batch-size 4 --sample 0 --out cli-lm.safetensors`.split(
      ' ',
    );

  it('trains a language model, generates from it, exports it and serves the export', async () => {
    fs.writeFileSync(path.join(tmp, 'corpus.txt'), text);
    cli(lmTrain(400));
    const args = ['--prompt', 'Café 😀', '--max-tokens', '10', '--seed', '1'];
    const generated = cli(['generate', '--model', 'cli-lm.safetensors', ...args]);
    expect(generated.startsWith('Café 😀')).toBe(true);
    cli(['export', '--model', 'cli-lm.safetensors', '--out', 'cli-lm.onnx']);
    const server = await serveCli(['--model', path.join(tmp, 'cli-lm.onnx'), '--threads', '1']);
    try {
      const r = await fetch(`${server.url}/v1/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompts: ['Café 😀'], max_tokens: 10, seed: 1, temperature: 0.8 }),
      });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { completions: string[] };
      expect(generated).toBe(`Café 😀${body.completions[0]}\n`);
    } finally {
      await server.stop();
    }
  });

  it('trains a seq2seq model with BPE vocabularies and translates with it', () => {
    const lines = shakespeare
      .split('\n')
      .filter((l) => l.length > 8 && l.length < 40)
      .slice(0, 400);
    const tsv = lines.map((l) => `${l}\t${l.toUpperCase()}`).join('\n');
    fs.writeFileSync(path.join(tmp, 'pairs.tsv'), tsv);
    cli(
      'seq2seq train --pairs pairs.tsv --tokenizer bpe --vocab-size 300 --steps 3 --hidden 16 --embedding 8 --test-size 20 --out cli-s2s.safetensors'.split(
        ' ',
      ),
    );
    const out = cli(['translate', '--model', 'cli-s2s.safetensors', '--input', 'First Citizen']);
    expect(out.length).toBeGreaterThan(0);
    const bad = spawnSync(process.execPath, [CLI, ...lmTrain(100)], { encoding: 'utf8', cwd: tmp });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/vocabSize 100 is smaller than the byte alphabet/);
  });
});
