// Subword tokenizers everywhere a model goes: language models and seq2seq models with BPE and
// SentencePiece vocabularies through checkpoints, ONNX export, OnnxGenerator and the server;
// streaming that never splits a character; repetition controls on subword tokens.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

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
} from '../../lib/index';
import { ROOT } from '../helpers/cli';
import { tmpDir } from '../helpers/tmp';

const tmp = tmpDir();
const shakespeare = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
const text = shakespeare.slice(0, 40_000) + '\nCafé 😀 漢字 naïve — “quoted”\n';
const hasSpm = spawnSync('spm_train', ['--help']).error === undefined;

async function collect(stream: AsyncGenerator<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const piece of stream) pieces.push(piece);
  return pieces;
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
    },
  );
});
