// The reference ONNX checker (python3-onnx, full_check) over exported files, through
// scripts/check-onnx.py.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { expect } from 'vitest';

import { ROOT } from './cli';

const CHECKER = path.join(ROOT, 'scripts', 'check-onnx.py');

/** Expects every file to pass the checker; a missing python3-onnx fails, never skips. */
export function expectOnnxChecked(files: string[]): void {
  const r = spawnSync('/usr/bin/python3', [CHECKER, ...files], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run /usr/bin/python3: ${r.error.message}`);
  expect(r.stderr, r.stderr).toBe('');
  expect(r.status, r.stdout).toBe(0);
  expect(r.stdout.trim().split('\n')).toEqual(files.map((f) => `OK ${f}`));
}
