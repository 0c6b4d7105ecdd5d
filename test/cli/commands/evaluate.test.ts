// rnnkit evaluate through the command line: the library's numbers, over every prediction.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel, WordTokenizer } from '../../../lib/index';
import { runCli } from '../../helpers/cli';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();
const file = path.join(dir, 'lm.safetensors');
const data = path.join(dir, 'text.txt');
const text = 'a cab faced a bad bead\n'.repeat(9) + 'dab';
let model: LanguageModel;

beforeAll(async () => {
  model = new LanguageModel({ tokenizer: CharTokenizer.fromText(text), hiddenSize: 10, seed: 2 });
  await model.save(file);
  fs.writeFileSync(data, text);
});

describe('rnnkit evaluate', () => {
  it('reports the loss over every next-token prediction of the file', () => {
    const r = runCli(['evaluate', '--model', file, '--data', data, '--seq-length', '16']);
    expect(r.status, r.stderr).toBe(0);
    const want = model.evaluate(text, { seqLength: 16 });
    expect(want.tokens).toBe(text.length - 1);
    expect(r.stdout).toBe(
      `loss ${want.loss.toFixed(4)} nats/token, perplexity ${want.perplexity.toFixed(3)}, ` +
        `${want.bitsPerToken.toFixed(4)} bits/token over ${want.tokens} next-token predictions ` +
        '(every token of the text after the first)\n',
    );
  });

  it('scores words outside the vocabulary as <unk>, or fails naming one with --unknown error', async () => {
    const words = WordTokenizer.fromText('the cat sat on the mat');
    const wordFile = path.join(dir, 'words.safetensors');
    const unseen = path.join(dir, 'unseen.txt');
    const heldOut = 'the dog sat on the rug';
    await new LanguageModel({ tokenizer: words, hiddenSize: 6, seed: 3 }).save(wordFile);
    fs.writeFileSync(unseen, heldOut);
    const r = runCli(['evaluate', '--model', wordFile, '--data', unseen]);
    expect(r.status, r.stderr).toBe(0);
    const want = (await LanguageModel.load(wordFile)).evaluate(heldOut, { unknown: 'map' });
    expect(r.stdout).toContain(`loss ${want.loss.toFixed(4)} nats/token`);
    expect(r.stdout).toContain(`over ${want.tokens} next-token predictions`);
    const refused = runCli([
      'evaluate',
      '--model',
      wordFile,
      '--data',
      unseen,
      '--unknown',
      'error',
    ]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/token " dog" at index \d+ is not in the word vocabulary/);
  });

  it('needs both files', () => {
    const r = runCli(['evaluate', '--model', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/evaluate needs --model FILE and --data FILE/);
  });
});
