// rnnkit translate and rnnkit attention through the command line, against the library.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import type { Seq2Seq } from '../../../lib/index';
import { runCli } from '../../helpers/cli';
import { tinySeq2Seq } from '../../helpers/models';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();
const file = path.join(dir, 's2s.safetensors');
let model: Seq2Seq;

beforeAll(async () => {
  model = tinySeq2Seq();
  await model.save(file);
});

describe('rnnkit translate', () => {
  it('prints the library translation of each input', async () => {
    const r = runCli([
      'translate',
      '--model',
      file,
      '--input',
      'abc',
      '--input',
      'fed',
      '--beam',
      '3',
      '--max-length',
      '6',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const want = await model.translate(['abc', 'fed'], { beam: 3, maxLength: 6 });
    expect(r.stdout).toBe(`${want[0].text}\n${want[1].text}\n`);
  });

  it('lists n-best hypotheses with their scores', async () => {
    const r = runCli([
      'translate',
      '--model',
      file,
      '--input',
      'abc',
      '--beam',
      '3',
      '--n-best',
      '2',
      '--max-length',
      '6',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const [t] = await model.translate(['abc'], { beam: 3, nBest: 2, maxLength: 6 });
    const lines = t.hypotheses.map(
      (h, k) => `  ${k + 1}. ${h.text}  (score ${h.score.toFixed(4)})`,
    );
    expect(r.stdout).toBe(['abc', ...lines, ''].join('\n'));
  });

  it.each([
    [['--input', 'abc', '--beam', 'wide'], /--beam must be an integer, got 'wide'/],
    [['--input', 'abc', '--unknown', 'drop'], /--unknown must be error or map, got 'drop'/],
    [[], /needs at least one --input TEXT/],
  ])('rejects %j naming the flag', (args, message) => {
    const r = runCli(['translate', '--model', file, ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('rnnkit attention', () => {
  it('draws the heatmap of the best hypothesis', async () => {
    const out = path.join(dir, 'a.svg');
    const r = runCli([
      'attention',
      '--model',
      file,
      '--input',
      'abc',
      '--max-length',
      '5',
      '--out',
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const [t] = await model.translate(['abc'], { maxLength: 5 });
    expect(r.stdout).toBe(`${t.text}\nsaved ${out}\n`);
    const svg = fs.readFileSync(out, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain(`abc -&gt; ${t.text}`);
  });

  it('takes exactly one input and needs --out', () => {
    const two = runCli([
      'attention',
      '--model',
      file,
      '--input',
      'a',
      '--input',
      'b',
      '--out',
      path.join(dir, 'b.svg'),
    ]);
    expect([two.status, two.stderr]).toEqual([2, expect.stringMatching(/exactly one --input/)]);
    const noOut = runCli(['attention', '--model', file, '--input', 'a']);
    expect([noOut.status, noOut.stderr]).toEqual([
      2,
      expect.stringMatching(/needs --out FILE\.svg/),
    ]);
  });
});
