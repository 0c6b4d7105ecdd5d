// A temporary folder per test file, removed afterwards.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll } from 'vitest';

export function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-test-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
