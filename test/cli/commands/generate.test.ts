// rnnkit generate through the command line, against the library's generate on the same model.
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel } from '../../../lib/index';
import { runCli } from '../../helpers/cli';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();
const file = path.join(dir, 'lm.safetensors');
let model: LanguageModel;

beforeAll(async () => {
  const tokenizer = CharTokenizer.fromText('abcdefgh \n');
  model = new LanguageModel({ tokenizer, hiddenSize: 12, embeddingSize: 6, seed: 3 });
  await model.save(file);
});

describe('rnnkit generate', () => {
  it('prints each prompt with the continuation the library gives', async () => {
    const r = runCli([
      'generate',
      '--model',
      file,
      '--prompt',
      'ab',
      '--prompt',
      'hg',
      '--max-tokens',
      '12',
      '--temperature',
      '0.9',
      '--top-k',
      '5',
      '--seed',
      '7',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const want = await model.generate({
      prompts: ['ab', 'hg'],
      maxTokens: 12,
      temperature: 0.9,
      topK: 5,
      seed: 7,
    });
    expect(r.stdout).toBe(`--- sample 1 ---\nab${want[0]}\n--- sample 2 ---\nhg${want[1]}\n`);
  });

  it('streams one prompt', async () => {
    const r = runCli([
      'generate',
      '--model',
      file,
      '--prompt',
      'a',
      '--max-tokens',
      '8',
      '--temperature',
      '0',
      '--stream',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const [want] = await model.generate({ prompts: ['a'], maxTokens: 8, temperature: 0 });
    expect(r.stdout).toBe(`a${want}\n`);
  });

  it.each([
    [['--temperature', 'hot'], /--temperature must be a number, got 'hot'/],
    [['--n', '0'], /--n must be 1 to/],
    [['--unknown', 'skip'], /--unknown must be error or map, got 'skip'/],
    [['--stream', '--n', '2'], /--stream takes one --prompt and --n 1/],
  ])('rejects %j naming the flag', (args, message) => {
    const r = runCli(['generate', '--model', file, ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
