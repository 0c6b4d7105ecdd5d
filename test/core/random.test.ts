// Random's SplitMix64 on 32-bit halves gives exactly the stream of the 64-bit definition, computed
// here independently with BigInt, for seeds of every kind; save/resume continue it.
import { describe, expect, it } from 'vitest';

import { Random } from '../../lib/index';

function reference(seed: number): () => number {
  let s = BigInt.asUintN(64, BigInt(Math.floor(seed)));
  return () => {
    s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n);
    let z = s;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    z ^= z >> 31n;
    return Number(z >> 11n) / 2 ** 53;
  };
}

describe('Random', () => {
  it('matches 64-bit SplitMix64 for every kind of seed', () => {
    for (const seed of [
      0,
      1,
      7,
      -1,
      -12345,
      2 ** 32 - 1,
      2 ** 32,
      1.7e12,
      2 ** 53 - 1,
      -(2 ** 53),
    ]) {
      const r = new Random(seed);
      const want = reference(seed);
      for (let i = 0; i < 20000; i++) {
        const [a, b] = [r.uniform(), want()];
        if (a !== b) expect({ seed, i, a }).toEqual({ seed, i, a: b });
      }
    }
  });

  it('resumes a saved stream exactly', () => {
    const r = new Random(99);
    for (let i = 0; i < 1000; i++) r.uniform();
    const resumed = Random.resume(r.save());
    for (let i = 0; i < 1000; i++) expect(resumed.uniform()).toBe(r.uniform());
    expect(Random.resume('18446744073709551615').save()).toBe('18446744073709551615');
  });
});
