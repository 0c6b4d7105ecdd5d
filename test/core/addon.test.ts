// The addon loader and the instruction-set variants: every variant this CPU runs computes the same
// products as the baseline build (to float32 rounding), variants the CPU lacks are refused, and
// a broken addon file gives one line naming it and the fix.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAddon } from '../../lib/core/addon';
import { runCli } from '../helpers/cli';

const { addon, choice } = loadAddon();
const dir = path.dirname(choice.file);
const cpu = (addon as { cpu(): { supported: string[] } }).cpu();
const variants = ['baseline', 'avx2', 'avx512'].filter((isa) =>
  fs.existsSync(path.join(dir, `rnnkit-${isa}.node`)),
);

// Products of every transpose case and of shapes that cover the full and partial register tiles,
// through each kernel, computed in a child process that loads one variant.
const PRODUCTS = `
const a = require(process.env.RNNKIT_ADDON);
let seed = 7;
const rand = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
const out = [];
for (const [M, N, K] of [[1, 300, 257], [5, 33, 17], [64, 512, 128], [130, 70, 600]])
  for (const kernel of ['builtin', 'blas', 'auto'])
    for (const t of [0, 1, 2, 3]) {
      const A = rand(M * K), B = rand(K * N), C = new Float32Array(M * N);
      a.gemm({ transA: (t & 2) > 0, transB: (t & 1) > 0, kernel, M, N, K, alpha: 1, beta: 0 }, A, B, C);
      out.push(Array.from(C));
    }
process.stdout.write(JSON.stringify({ isa: a.info().isa, out }));
`;

function products(isa: string): { isa: string; out: number[][] } {
  const r = spawnSync(process.execPath, ['-e', PRODUCTS], {
    env: { ...process.env, RNNKIT_ADDON: path.join(dir, `rnnkit-${isa}.node`) },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`variant ${isa}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('instruction-set variants', () => {
  it('loads the best variant this CPU runs', () => {
    if (choice.source === 'RNNKIT_ADDON' || choice.isa === 'native') return;
    const best = cpu.supported.find((isa) => variants.includes(isa));
    expect(choice.isa).toBe(best);
    expect(cpu.supported.at(-1)).toBe('baseline');
  });

  for (const isa of variants.filter((v) => v !== 'baseline')) {
    // Reported as skipped where this CPU cannot run the variant.
    it.skipIf(!cpu.supported.includes(isa))(
      `the ${isa} build computes what the baseline build does`,
      () => {
        const base = products('baseline');
        const other = products(isa);
        expect(other.isa).toBe(isa);
        expect(other.out.length).toBe(base.out.length);
        // The worst difference relative to the tolerance: float32 sums of up to 600 terms,
        // fused or not and in other orders.
        let worst = 0;
        other.out.forEach((c, i) =>
          c.forEach((x, j) => {
            const y = base.out[i][j];
            worst = Math.max(worst, Math.abs(x - y) / (3e-4 * Math.max(1, Math.abs(y))));
          }),
        );
        expect(worst).toBeLessThanOrEqual(1);
      },
    );
  }

  it('refuses RNNKIT_ISA naming a variant the CPU lacks, and unknown names', () => {
    const lacking = ['avx2', 'avx512'].filter((isa) => !cpu.supported.includes(isa));
    for (const isa of lacking) {
      process.env.RNNKIT_ISA = isa;
      try {
        expect(() => loadAddon()).toThrow(
          new RegExp(`RNNKIT_ISA=${isa}, but this CPU .* does not support it`),
        );
      } finally {
        delete process.env.RNNKIT_ISA;
      }
    }
    process.env.RNNKIT_ISA = 'sse9';
    try {
      expect(() => loadAddon()).toThrow(
        /RNNKIT_ISA must be one of baseline, avx2, avx512, native, got 'sse9'/,
      );
    } finally {
      delete process.env.RNNKIT_ISA;
    }
  });
});

describe('broken addon files and settings', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-addon-'));
  afterEach(() => {
    delete process.env.RNNKIT_ADDON;
    delete process.env.RNNKIT_BLAS;
    delete process.env.RNNKIT_PRODUCTS;
  });

  const broken = (name: string, bytes: Buffer) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, bytes);
    process.env.RNNKIT_ADDON = file;
    let message = '';
    try {
      loadAddon();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(`cannot load the native addon ${file}`);
    expect(message).toContain('--build-from-source');
    expect(message.split('\n')).toHaveLength(1);
  };
  const good = fs.readFileSync(path.join(dir, 'rnnkit-baseline.node'));

  it('a truncated file', () => broken('truncated.node', good.subarray(0, 4096)));

  it('a file for another architecture', () => {
    const other = Buffer.from(good);
    other.writeUInt16LE(other.readUInt16LE(18) === 183 ? 62 : 183, 18); // e_machine: AArch64 / x86-64
    broken('other-arch.node', other);
  });

  it('a file that is not a shared library', () => broken('text.node', Buffer.from('#!/bin/sh\n')));

  it('a missing RNNKIT_ADDON file', () => {
    process.env.RNNKIT_ADDON = path.join(tmp, 'absent.node');
    expect(() => loadAddon()).toThrow(/RNNKIT_ADDON names .*absent\.node, which is not there/);
  });

  it('the rnnkit command says in one line that no addon loads, naming it', () => {
    const file = path.join(tmp, 'absent.node');
    const r = runCli(['info'], { RNNKIT_ADDON: file });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`rnnkit: RNNKIT_ADDON names ${file}, which is not there\n`);
  });

  it('refuses RNNKIT_BLAS and RNNKIT_PRODUCTS values the native side would ignore', () => {
    process.env.RNNKIT_BLAS = 'of';
    expect(() => loadAddon()).toThrow(/RNNKIT_BLAS must be one of auto, off, got 'of'/);
    delete process.env.RNNKIT_BLAS;
    process.env.RNNKIT_PRODUCTS = 'mkl';
    expect(() => loadAddon()).toThrow(
      /RNNKIT_PRODUCTS must be one of openblas, builtin, got 'mkl'/,
    );
  });
});

describe('OpenBLAS opened at run time', () => {
  const info = (env: Record<string, string>) => {
    const r = spawnSync(
      process.execPath,
      ['-e', 'process.stdout.write(JSON.stringify(require(process.env.RNNKIT_ADDON).info()))'],
      { env: { ...process.env, RNNKIT_ADDON: choice.file, ...env }, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout);
  };

  it('RNNKIT_BLAS=off runs the built-in GEMM for everything', () => {
    const i = info({ RNNKIT_BLAS: 'off' });
    expect(i).toMatchObject({
      gemm: 'builtin',
      blasCore: '',
      blasLibrary: '',
      products: 'builtin',
      calibration: null,
    });
  });

  it('a library that is not OpenBLAS is not taken', () => {
    const i = info({ RNNKIT_BLAS_LIB: 'libm.so.6' });
    expect(i.gemm).toBe('builtin');
  });

  it('with OpenBLAS, the products go to the GEMM measured faster, or the one RNNKIT_PRODUCTS names', () => {
    const i = info({});
    if (i.gemm !== 'openblas') return expect(i.products).toBe('builtin');
    const { openblasGflops, builtinGflops } = i.calibration;
    expect(openblasGflops).toBeGreaterThan(0);
    expect(i.products).toBe(builtinGflops > 1.03 * openblasGflops ? 'builtin' : 'openblas');
    expect(info({ RNNKIT_PRODUCTS: 'builtin' })).toMatchObject({
      products: 'builtin',
      calibration: null,
    });
    expect(info({ RNNKIT_PRODUCTS: 'openblas' })).toMatchObject({
      products: 'openblas',
      calibration: null,
    });
  });
});
