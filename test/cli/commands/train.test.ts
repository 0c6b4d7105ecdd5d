// rnnkit train through the command line: a few steps of a tiny model, and its flag checks.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { info, LanguageModel } from '../../../lib/index';
import { runCli } from '../../helpers/cli';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();
const data = path.join(dir, 'corpus.txt');
fs.writeFileSync(data, 'to be or not to be, that is the question\n'.repeat(20));
const tiny = ['--data', data, '--hidden', '8', '--embedding', '4', '--seq-length', '8'];
const short = ['--batch-size', '2', '--steps', '3', '--validation-split', '0', '--sample', '5'];

describe('rnnkit train', () => {
  it('trains, saves the model and its loss curve, and prints a sample', () => {
    const out = path.join(dir, 'm.safetensors');
    const r = runCli(['train', ...tiny, ...short, '--cell', 'gru', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/trained 3 steps in .* s/);
    expect(r.stdout).toMatch(/--- sample \(temperature 0\.8\) ---/);
    expect(fs.readFileSync(path.join(dir, 'm.loss.svg'), 'utf8')).toMatch(/^<svg/);
    return LanguageModel.load(out).then((m) => {
      expect(m.spec).toMatchObject({ cell: 'gru', hiddenSize: 8, embeddingSize: 4 });
      expect(m.resumeState?.training.step).toBe(3);
    });
  });

  it('resumes a checkpoint where it stopped', () => {
    const out = path.join(dir, 'm.safetensors');
    const r = runCli([
      'train',
      '--data',
      data,
      ...short,
      '--steps',
      '5',
      '--resume',
      out,
      '--out',
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/trained 5 steps/);
  });

  it('trains a word model whose vocabulary leaves words out, on <unk> in their place', () => {
    // 10 distinct words and ',' and '\n'; --max-vocab 6 keeps <unk> and the 5 most frequent.
    const out = path.join(dir, 'words.safetensors');
    const word = ['train', ...tiny, ...short, '--tokenizer', 'word', '--max-vocab', '6'];
    const r = runCli([...word, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/trained 3 steps/);
    return LanguageModel.load(out).then((m) => {
      expect(m.tokenizer?.size).toBe(6);
      const ids = m.tokenizer!.encode('to be or not to be, that is the question', {
        unknown: 'map',
      });
      expect([...ids]).toContain(m.tokenizer!.unknownId);
    });
  });

  it('fails naming the first word outside the vocabulary with --unknown error', () => {
    const word = ['train', ...tiny, ...short, '--tokenizer', 'word', '--max-vocab', '6'];
    const r = runCli([...word, '--unknown', 'error', '--out', path.join(dir, 'x.safetensors')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/token ".*" at index \d+ is not in the word vocabulary/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(fs.existsSync(path.join(dir, 'x.safetensors'))).toBe(false);
  });

  it.each([
    [['--unknown', 'skip'], /--unknown must be map or error, got 'skip'/],
    [['--cell', 'tree'], /--cell must be lstm, gru or rnn, got 'tree'/],
    [['--lr-schedule', 'step'], /--lr-schedule must be constant, cosine or linear, got 'step'/],
    [['--tokenizer', 'bpe2'], /--tokenizer must be char, word, bpe or spm:FILE, got 'bpe2'/],
    [['--hidden', '0'], /--hidden must be 1 to/],
    [['--dropout', 'lots'], /--dropout must be a number, got 'lots'/],
    [['--steps', '2.5'], /--steps must be an integer, got '2.5'/],
    [['--precision', 'fp16'], /--precision must be float32 or bf16, got 'fp16'/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--out', path.join(dir, 'no', 'such', 'm.safetensors')], /output folder .* does not exist/],
  ])('rejects %j naming the flag', (args, message) => {
    const r = runCli(['train', ...tiny, ...short, ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/usage: rnnkit train|rnnkit train \[--data FILE\]/);
  });

  it('takes --precision bf16 where the CPU has bf16 products, else fails saying what it lacks', () => {
    const out = path.join(dir, 'bf16.safetensors');
    const r = runCli(['train', ...tiny, ...short, '--precision', 'bf16', '--out', out]);
    if (info().bf16.products === null) {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/precision 'bf16' needs a CPU with AVX512-BF16 .* lacks it/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(fs.existsSync(out)).toBe(false);
    } else {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/trained 3 steps/);
    }
  });

  it('generates its help from the flags', () => {
    const r = runCli(['train', '--help']);
    expect(r.status).toBe(0);
    for (const flag of [
      '--data FILE',
      '--tokenizer KIND',
      '--vocab-size N',
      '--cell lstm|gru|rnn',
      '--lr-schedule constant|cosine|linear',
      '--precision float32|bf16',
      '--half',
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });
});
