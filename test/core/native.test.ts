// The typed facade and the addon name the same functions: every export of the built addon is in
// the Native interface of lib/core/native.ts and every member of that interface is exported.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native, releaseArrays } from '../../lib/core/native';

const ROOT = path.resolve(__dirname, '..', '..');

/** The member names of `export interface Native { ... }`, read from the TypeScript source. */
function interfaceMembers(): string[] {
  const source = fs.readFileSync(path.join(ROOT, 'lib', 'core', 'native.ts'), 'utf8');
  const body = /^export interface Native \{\n([\s\S]*?)^\}/m.exec(source);
  if (!body) throw new Error('lib/core/native.ts has no `export interface Native`');
  return [...body[1].matchAll(/^ {2}([A-Za-z_$][\w$]*)\??[(:<]/gm)].map((m) => m[1]);
}

describe('the Native interface and the addon', () => {
  it('name the same functions', () => {
    const declared = interfaceMembers().sort();
    const exported = Object.keys(native).sort();
    expect(declared.length).toBeGreaterThan(20);
    expect(exported).toEqual(declared);
  });

  it('name a blocking function plainly and its Promise twin <name>Async', () => {
    const names = new Set(Object.keys(native));
    expect([...names].filter((n) => n.endsWith('Sync'))).toEqual([]);
    for (const name of names) {
      if (name.endsWith('Async')) expect(names, name).toContain(name.slice(0, -'Async'.length));
    }
  });

  it('info() names what the interface declares', () => {
    const keys = Object.keys(native.info()).sort();
    const optional = new Set(['cudaDevice']);
    const declared = [
      'isa',
      'gemm',
      'blasCore',
      'blasLibrary',
      'builtinVectorBits',
      'products',
      'calibration',
      'int8Kernel',
      'bf16',
      'threads',
      'cuda',
    ];
    expect(keys.filter((k) => !optional.has(k))).toEqual(declared.sort());
  });
});

describe('releaseArrays', () => {
  it('frees the buffers that an array spans whole, and leaves partial views and shared memory', () => {
    const whole = new Float32Array(1024).fill(1);
    const file = new Uint8Array(4096).fill(2);
    const part = file.subarray(16, 64);
    const shared = new Float32Array(new SharedArrayBuffer(64));
    releaseArrays([whole, whole, part, shared]);
    expect([whole.length, whole.buffer.byteLength]).toEqual([0, 0]);
    expect([file.length, part.length, shared.length]).toEqual([4096, 48, 16]);
    expect(file[100]).toBe(2);
  });

  it('refuses anything but one array of buffers', () => {
    expect(() => native.releaseBuffers(5 as unknown as ArrayBuffer[])).toThrow(
      /releaseBuffers: takes one array of ArrayBuffers, got/,
    );
  });
});
