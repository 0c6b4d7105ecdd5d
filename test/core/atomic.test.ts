// Saves leave no litter after a crash: the temporary files of a killed save are removed by the
// next save of the same target, while saves still running (here or in another process) and other
// targets' files are left alone.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { writeFileAtomic } from '../../lib/core/atomic';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-atomic-'));
const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

describe('temporary files', () => {
  it('the next save removes temporaries of dead writers and old nameless ones only', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'stale-'));
    const target = path.join(dir, 'model.safetensors');
    const dead = deadPid();
    const stale = `.model.safetensors.${dead}-0123456789ab.tmp`;
    const legacy = '.model.safetensors.a1b2c3d4e5f6.tmp';
    const recentLegacy = '.model.safetensors.ffffffffffff.tmp';
    const live = `.model.safetensors.${process.ppid}-abcdefabcdef.tmp`;
    const other = `.other.safetensors.${dead}-0123456789ab.tmp`;
    for (const n of [stale, legacy, recentLegacy, live, other]) {
      fs.writeFileSync(path.join(dir, n), 'partial');
    }
    const old = new Date(Date.now() - 3600_000);
    fs.utimesSync(path.join(dir, legacy), old, old);
    await writeFileAtomic(target, 'new');
    expect(fs.readFileSync(target, 'utf8')).toBe('new');
    expect(temps(dir).sort()).toEqual([live, other, recentLegacy].sort());
  });

  it('saves running at once in one process do not remove each other', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'concurrent-'));
    const target = path.join(dir, 'x.bin');
    const big = new Uint8Array(4 << 20);
    await Promise.all(Array.from({ length: 6 }, (_, i) => writeFileAtomic(target, big.fill(i))));
    expect(fs.statSync(target).size).toBe(4 << 20);
    expect(temps(dir)).toEqual([]);
  });

  it('after SIGKILLs during saves, the next save leaves no temporary file', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'killed-'));
    const target = path.join(dir, 'model.safetensors');
    const atomic = path.resolve(__dirname, '../../lib/core/atomic.ts');
    // Each child saves 32 MiB over and over; it is killed at a random moment after it starts.
    const script = `const { writeFileAtomic } = require(${JSON.stringify(atomic)});
      const data = new Uint8Array(32 << 20);
      process.stdout.write('go');
      (async () => { for (;;) await writeFileAtomic(${JSON.stringify(target)}, data); })();`;
    let litter = 0;
    for (let k = 0; k < 6; k++) {
      const child = spawn(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise((resolve) => child.stdout.once('data', resolve));
      await new Promise((resolve) => setTimeout(resolve, 20 + 37 * k));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      litter += temps(dir).length;
    }
    // At least one kill landed mid-save, or the test proves nothing.
    expect(litter).toBeGreaterThan(0);
    await writeFileAtomic(target, 'after');
    expect(temps(dir)).toEqual([]);
    expect(fs.readFileSync(target, 'utf8')).toBe('after');
  });
});
