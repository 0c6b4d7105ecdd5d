// rnnkit quantize through the command line: the file it writes is the library's quantized model,
// and generate takes it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel, readSafetensors } from '../../../lib/index';
import { runCli } from '../../helpers/cli';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();
const file = path.join(dir, 'lm.safetensors');
let model: LanguageModel;

beforeAll(async () => {
  const tokenizer = CharTokenizer.fromText('abcdefgh \n');
  model = new LanguageModel({ tokenizer, hiddenSize: 16, embeddingSize: 6, seed: 3 });
  await model.save(file);
});

describe('rnnkit quantize', () => {
  for (const dtype of ['int8', 'bf16'] as const) {
    it(`writes the ${dtype} model that quantize() gives, and generate runs it`, async () => {
      const out = path.join(dir, `lm-${dtype}.safetensors`);
      const r = runCli(['quantize', '--model', file, '--out', out, '--dtype', dtype]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`quantized .* to ${dtype}: `));
      const { metadata } = await readSafetensors(out);
      expect(metadata.weights).toBe(dtype);
      const loaded = await LanguageModel.load(out);
      const direct = model.quantize(dtype);
      loaded.parameters().forEach((p, i) => expect(p.data).toEqual(direct.parameters()[i].data));
      const g = runCli([
        'generate',
        '--model',
        out,
        '--prompt',
        'ab',
        '--max-tokens',
        '10',
        '--temperature',
        '0',
      ]);
      expect(g.status, g.stderr).toBe(0);
      const [want] = await direct.generate({ prompts: ['ab'], maxTokens: 10, temperature: 0 });
      expect(g.stdout).toBe(`ab${want}\n`);
    });
  }

  it('refuses a missing flag, an unknown type, a quantized model and --out over --model', () => {
    const before = fs.readFileSync(file);
    expect(runCli(['quantize', '--model', file, '--out', path.join(dir, 'x')]).stderr).toMatch(
      /quantize needs --model FILE, --out FILE and --dtype int8\|bf16/,
    );
    expect(
      runCli(['quantize', '--model', file, '--out', path.join(dir, 'x'), '--dtype', 'int4']).stderr,
    ).toMatch(/--dtype must be int8 or bf16, got 'int4'/);
    expect(runCli(['quantize', '--model', file, '--out', file, '--dtype', 'int8']).stderr).toMatch(
      /--out names the --model file/,
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    const q = path.join(dir, 'lm-int8.safetensors');
    const again = runCli([
      'quantize',
      '--model',
      q,
      '--out',
      path.join(dir, 'y'),
      '--dtype',
      'bf16',
    ]);
    expect([again.status, again.stderr]).toEqual([1, expect.stringMatching(/already int8/)]);
    expect(fs.existsSync(path.join(dir, 'y'))).toBe(false);
  });
});
