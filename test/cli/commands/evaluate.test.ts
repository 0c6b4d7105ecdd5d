// rnnkit evaluate through the command line: the library's numbers, over every prediction.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel } from '../../../lib/index';
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

  it('needs both files', () => {
    const r = runCli(['evaluate', '--model', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/evaluate needs --model FILE and --data FILE/);
  });
});
