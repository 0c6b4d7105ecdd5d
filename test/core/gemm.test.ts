// GEMM: OpenBLAS and the built-in kernel agree through the addon.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { info } from '../../lib/index';
import { addonChoice, native } from '../../lib/core/native';
import { randn, expectClose } from '../helpers/reference';

const ROOT = path.resolve(__dirname, '..', '..');

describe('GEMM: OpenBLAS and the built-in kernel agree through the addon', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 5, 7],
    [17, 33, 9],
    [64, 64, 64],
    [70, 13, 129],
    [5, 100, 2],
    // Large enough for the built-in GEMM to split its rows over threads.
    [300, 130, 110],
    // Few rows and a large B: their columns split over threads where OpenBLAS runs one.
    [5, 700, 400],
  ];
  const { gemm: backend, blasCore, builtinVectorBits, products, calibration } = info();

  it(`addon reports its GEMM backend (${backend}, products on ${products})`, () => {
    expect(['openblas', 'builtin']).toContain(backend);
    expect([128, 256, 512]).toContain(builtinVectorBits);
    expect(['openblas', 'builtin']).toContain(products);
    if (backend === 'builtin') {
      expect(blasCore).toBe('');
      expect(products).toBe('builtin');
    } else {
      expect(blasCore.length).toBeGreaterThan(0);
      // The built-in kernel takes the products only where it measured 3% faster at first use
      // (unless RNNKIT_PRODUCTS named one, and then nothing was measured).
      if (calibration) {
        const faster = calibration.builtinGflops > 1.03 * calibration.openblasGflops;
        expect(products).toBe(faster ? 'builtin' : 'openblas');
      } else {
        expect(products).toBe(process.env.RNNKIT_PRODUCTS);
      }
    }
  });

  describe.each(shapes)('M=%i N=%i K=%i', (M, N, K) => {
    it.each([
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ])('transA=%s transB=%s', async (transA, transB) => {
      const A = randn(M * K, M * 1000 + K);
      const Bm = randn(K * N, N * 1000 + K + 1);
      const C0 = randn(M * N, 7);
      const alpha = 0.75;
      const beta = -0.5;
      const a = (i: number, k: number) => (transA ? A[k * M + i] : A[i * K + k]);
      const b = (k: number, j: number) => (transB ? Bm[j * K + k] : Bm[k * N + j]);
      const ref = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a(i, k) * b(k, j);
          ref[i * N + j] = alpha * s + beta * C0[i * N + j];
        }
      const shape = { transA, transB, M, N, K, alpha, beta };
      const run = (kernel: 'auto' | 'blas' | 'builtin') => {
        const C = C0.slice();
        native.gemm({ ...shape, kernel }, A, Bm, C);
        return C;
      };
      const tol = 1e-6 * Math.sqrt(K) * 4;
      const blas = run('blas');
      const builtin = run('builtin');
      expectClose(blas, ref, tol, 'BLAS vs float64');
      expectClose(builtin, ref, tol, 'built-in GEMM vs float64');
      expectClose(builtin, blas, tol, 'built-in vs BLAS');
      // 'auto' is one of the two: the built-in kernel where it takes the product (16 rows or more).
      expect(run('auto')).toEqual(products === 'builtin' && M >= 16 ? builtin : blas);
      // Inside withBuiltinProducts every product is the built-in kernel's, whatever its rows.
      expect(native.withBuiltinProducts(() => run('auto'))).toEqual(builtin);
      const viaAsync = C0.slice();
      await native.gemmAsync({ ...shape, kernel: 'builtin' }, A, Bm, viaAsync);
      expect(viaAsync).toEqual(builtin);
      // The built-in GEMM's rows come out the same however many threads share them.
      const threads = info().threads;
      try {
        native.setThreads(threads === 1 ? 2 : 1);
        expect(run('builtin')).toEqual(builtin);
      } finally {
        native.setThreads(threads);
      }
    });
  });
});

describe('withBuiltinProducts', () => {
  const shape = { transA: false, transB: true, M: 32, N: 48, K: 200, alpha: 1, beta: 0 };
  const A = randn(shape.M * shape.K, 1);
  const B = randn(shape.N * shape.K, 2);
  const run = (kernel: 'auto' | 'blas' | 'builtin') => {
    const C = new Float32Array(shape.M * shape.N);
    native.gemm({ ...shape, kernel }, A, B, C);
    return C;
  };
  const outside = run('auto');
  const builtin = run('builtin');

  it("returns the function's result, nested too, and the products after it are gemm's again", () => {
    expect(native.withBuiltinProducts(() => native.withBuiltinProducts(() => run('auto')))).toEqual(
      builtin,
    );
    expect(native.withBuiltinProducts(() => 'done')).toBe('done');
    expect(run('auto')).toEqual(outside);
  });

  it("passes the function's exception through and ends the scope", () => {
    expect(() =>
      native.withBuiltinProducts(() => {
        throw new RangeError('from inside');
      }),
    ).toThrow('from inside');
    expect(run('auto')).toEqual(outside);
  });

  it('refuses anything but one function, naming what came', () => {
    const call = native.withBuiltinProducts as (...args: unknown[]) => unknown;
    expect(() => call(42)).toThrow(/withBuiltinProducts: takes one function, got/);
    expect(() => call()).toThrow(/withBuiltinProducts: takes one function/);
    expect(() => call(() => 1, 2)).toThrow(/withBuiltinProducts: takes one function/);
  });
});

// The GEMM sets up its threads (and, with OpenBLAS, measures which GEMM takes the products) at
// its first product. When that first product was a packed one (a generation's first step), the
// measurement ran inside it and reallocated the thread's panel of A that the product had just
// packed, which it then read after the free: the first logits of a process were computed from
// four clobbered floats, NaN at times. A fresh process's first scores must equal its later ones.
describe("a process's first product", () => {
  it('reads the operands it was given, as every later product does', () => {
    const script = String.raw`
      const addon = require(process.argv[1]);
      const { LanguageModel } = require(process.argv[2] + '/lib/index.ts');
      // V > 2E: no folded embedding table, whose product would set the threads up first.
      const model = new LanguageModel({ vocabSize: 40, embeddingSize: 8, hiddenSize: 24, seed: 3 });
      const ids = Int32Array.from({ length: 60 }, (_, i) => (i * 7) % 40);
      const first = addon.lmScore(model.nativeWeights(), ids, 1);
      const again = addon.lmScore(model.nativeWeights(), ids, 1);
      process.stdout.write(JSON.stringify({ first, again, calibrated: addon.info().calibration !== null }));`;
    const env = { ...process.env };
    delete env.RNNKIT_PRODUCTS;
    const r = spawnSync(
      process.execPath,
      ['--require', 'tsx/cjs', '-e', script, addonChoice.file, ROOT],
      { encoding: 'utf8', env, timeout: 60000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { first: number; again: number; calibrated: boolean };
    expect(Number.isFinite(out.first)).toBe(true);
    expect(out.first).toBe(out.again);
    expect(out.calibrated).toBe(info().gemm === 'openblas');
  });
});
