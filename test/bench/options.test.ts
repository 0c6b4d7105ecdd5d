// The benchmark scripts' shared option handling (bench/common.mjs commandLine), through bench/ab.mjs,
// which needs no build: --help prints the usage, a bad option or count names itself and exits 2.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli';

function ab(...args: string[]) {
  return spawnSync(process.execPath, [path.join(ROOT, 'bench', 'ab.mjs'), ...args], {
    encoding: 'utf8',
  });
}

describe('benchmark script options', () => {
  it('prints the usage on --help and exits 0', () => {
    const r = ab('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: node bench\/ab\.mjs --a DIR --b DIR/);
  });

  it('names an unknown option, without a stack trace', () => {
    const r = ab('--a', '.', '--b', '.', '--nope', 'train/S/lstm');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Unknown option '--nope'");
    expect(r.stderr).toContain('usage:');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('names a count that is not a positive integer', () => {
    for (const bad of ['0', '-3', '2.5', 'many']) {
      const r = ab('--a', '.', '--b', '.', `--rounds=${bad}`, 'train/S/lstm');
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--rounds must be a positive integer, got '${bad}'`);
    }
  });

  it('refuses a run without both checkouts or a workload', () => {
    for (const args of [
      ['--a', '.', 'train/S/lstm'],
      ['--a', '.', '--b', '.'],
    ]) {
      const r = ab(...args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^usage:/);
    }
  });
});
