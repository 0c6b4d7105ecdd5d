// What the bad-input tests share: the case shape, the check that a call throws the right error
// class with a message naming the argument, and the small sizes every case starts from.
import { expect } from 'vitest';

export type ErrorClass = typeof TypeError | typeof RangeError;
export type Case = [string, () => unknown, ErrorClass, RegExp];

export function expectThrows(fn: () => unknown, cls: ErrorClass, message: RegExp): void {
  let error: unknown;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    error = e;
  }
  expect(error, `expected a ${cls.name}, but the call returned ${String(result)}`).toBeDefined();
  const e = error as Error;
  expect(e, `${e?.constructor?.name}: ${e?.message}`).toBeInstanceOf(cls);
  expect(e.message).toMatch(message);
}

export const T = 3;
export const B = 2;
export const I = 4;
export const H = 5;
export const L = 2;

export const f32 = (n: number) => new Float32Array(n);
