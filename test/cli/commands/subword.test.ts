// rnnkit train and seq2seq train with --tokenizer bpe and spm:FILE: trained, generated from,
// exported and served through the command line, and the flag's checks.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { Seq2Seq } from '../../../lib/index';
import { ROOT, runCli } from '../../helpers/cli';
import { serveCli } from '../../helpers/serve-cli';
import { tmpDir } from '../../helpers/tmp';

const tmp = tmpDir();
const shakespeare = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
const text = shakespeare.slice(0, 40_000) + '\nCafé 😀 漢字 naïve — “quoted”\n';
const hasSpm = spawnSync('spm_train', ['--help']).error === undefined;
const at = (file: string) => path.join(tmp, file);

/** Runs the CLI; it must succeed. */
function cli(args: string[]): string {
  const r = runCli(args);
  expect(r.stderr + r.stdout).not.toMatch(/Error/);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('rnnkit train and seq2seq train with subword tokenizers', () => {
  // Arguments of a short language-model training run on corpus.txt with a BPE vocabulary.
  const lmTrain = (vocabSize: number) => [
    'train',
    ...['--data', at('corpus.txt'), '--tokenizer', 'bpe', '--vocab-size', String(vocabSize)],
    ...['--steps', '3', '--hidden', '16', '--embedding', '8', '--seq-length', '16'],
    ...['--batch-size', '4', '--sample', '0', '--out', at('cli-lm.safetensors')],
  ];
  const lines = shakespeare
    .split('\n')
    .filter((l) => l.length > 8 && l.length < 40)
    .slice(0, 400);
  const s2sTrain = (tokenizer: string, out: string) => [
    'seq2seq',
    'train',
    ...['--pairs', at('pairs.tsv'), '--tokenizer', tokenizer, '--steps', '3'],
    ...['--hidden', '16', '--embedding', '8', '--test-size', '20', '--out', at(out)],
  ];
  fs.writeFileSync(at('corpus.txt'), text);
  fs.writeFileSync(at('pairs.tsv'), lines.map((l) => `${l}\t${l.toUpperCase()}`).join('\n'));

  it('trains a language model, generates from it, exports it and serves the export', async () => {
    cli(lmTrain(400));
    const args = ['--prompt', 'Café 😀', '--max-tokens', '10', '--seed', '1'];
    const generated = cli(['generate', '--model', at('cli-lm.safetensors'), ...args]);
    expect(generated.startsWith('Café 😀')).toBe(true);
    cli(['export', '--model', at('cli-lm.safetensors'), '--out', at('cli-lm.onnx')]);
    const server = await serveCli(['--model', at('cli-lm.onnx'), '--threads', '1']);
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

  it('trains a seq2seq model with BPE vocabularies and translates with it', async () => {
    cli([...s2sTrain('bpe', 'cli-s2s.safetensors'), '--vocab-size', '300']);
    const trained = await Seq2Seq.load(at('cli-s2s.safetensors'));
    expect(trained.sourceTokenizer?.kind).toBe('bpe');
    expect(trained.targetTokenizer?.size).toBe(300);
    const out = cli([
      'translate',
      '--model',
      at('cli-s2s.safetensors'),
      '--input',
      'First Citizen',
    ]);
    expect(out.length).toBeGreaterThan(0);
  });

  it.skipIf(!hasSpm)('trains a seq2seq model on a SentencePiece model (spm:FILE)', async () => {
    execFileSync('spm_train', [
      `--input=${at('corpus.txt')}`,
      `--model_prefix=${at('pairs')}`,
      '--vocab_size=500',
      '--byte_fallback=true',
      '--num_threads=1',
      '--minloglevel=2',
    ]);
    cli(s2sTrain(`spm:${at('pairs.model')}`, 'cli-spm.safetensors'));
    const trained = await Seq2Seq.load(at('cli-spm.safetensors'));
    expect(trained.sourceTokenizer?.kind).toBe('sentencepiece');
    expect(trained.targetTokenizer?.kind).toBe('sentencepiece');
  });

  it('rejects a bad --tokenizer, a missing spm file and a vocabulary below the byte alphabet', () => {
    for (const kind of ['bpe2', 'spm:', 'sentencepiece']) {
      const r = runCli(s2sTrain(kind, 'never.safetensors'));
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--tokenizer must be char, word, bpe or spm:FILE, got '${kind}'`);
    }
    const missing = runCli(s2sTrain(`spm:${at('missing.model')}`, 'never.safetensors'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('missing.model');
    const small = runCli(lmTrain(100));
    expect(small.status).not.toBe(0);
    expect(small.stderr).toMatch(/vocabSize 100 is smaller than the byte alphabet/);
    expect(fs.existsSync(at('never.safetensors'))).toBe(false);
  });
});
