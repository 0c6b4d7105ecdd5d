// rnnkit info, rnnkit bench --quick and the top-level help through the command line.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { info } from '../../../lib/index';
import { ROOT, runCli } from '../../helpers/cli';
import { tmpDir } from '../../helpers/tmp';

const dir = tmpDir();

describe('rnnkit info', () => {
  it('prints the version of package.json and what the addon was built with', () => {
    const r = runCli(['info']);
    expect(r.status, r.stderr).toBe(0);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(r.stdout).toContain(`rnnkit ${pkg.version}\n`);
    const i = info();
    expect(r.stdout).toMatch(i.gemm === 'openblas' ? /BLAS: OpenBLAS/ : /BLAS: none/);
    expect(r.stdout).toContain(`${i.threads} thread(s); int8 products: ${i.int8Kernel}\n`);
    expect(r.stdout).toMatch(
      i.bf16.products
        ? `bf16 training products: ${i.bf16.products}\n`
        : /bf16 training products: none \(.*no AVX512-BF16; train --precision bf16 is refused\)\n/,
    );
  });
});

describe('rnnkit help', () => {
  it('lists every command, and an unknown one fails', () => {
    const r = runCli(['--help']);
    expect(r.status).toBe(0);
    for (const c of [
      'train',
      'generate',
      'evaluate',
      'seq2seq train',
      'translate',
      'attention',
      'export',
      'quantize',
      'serve',
      'bench',
      'info',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
    }
    const bad = runCli(['fly']);
    expect([bad.status, bad.stderr]).toEqual([1, expect.stringMatching(/unknown command 'fly'/)]);
  });
});

describe('rnnkit bench --quick', () => {
  // The harness measures the built package (dist/), which `npm test` builds first.
  it('runs one workload and writes its record', () => {
    const json = path.join(dir, 'bench.json');
    const r = runCli([
      'bench',
      '--quick',
      '--only',
      'generate/M/lstm/b1',
      '--threads',
      '1',
      '--json',
      json,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| generate\/M\/lstm\/b1 \| rnnkit +\|/);
    const record = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(record.meta.options).toMatchObject({ quick: true, only: ['generate/M/lstm/b1'] });
    expect(record.workloads.map((w: { id: string }) => w.id)).toEqual(['generate/M/lstm/b1']);
  });
});
