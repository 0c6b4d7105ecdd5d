// The layer rules of .dependency-cruiser.cjs (run by `npm run lint`) on a small tree that breaks
// them on purpose, and on lib/ itself.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(
  ROOT,
  'node_modules',
  'dependency-cruiser',
  'bin',
  'dependency-cruise.mjs',
);

function cruise(cwd: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [DEPCRUISE, 'lib', '--config', CONFIG], {
    cwd,
    encoding: 'utf8',
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe('layer lint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-layers-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  };

  it('fails on an upward import, naming the rule and the files', () => {
    write('tsconfig.json', '{ "compilerOptions": { "module": "node16", "strict": true } }');
    write('lib/nn/layer.ts', 'export const width = 1;\n');
    write('lib/core/low.ts', "import { width } from '../nn/layer';\nexport const w = width;\n");
    const { status, output } = cruise(dir);
    expect(status).not.toBe(0);
    expect(output).toMatch(/layer-core: lib\/core\/low\.ts → lib\/nn\/layer\.ts/);
  });

  it('fails on an import cycle inside one layer', () => {
    fs.rmSync(path.join(dir, 'lib', 'core'), { recursive: true });
    write('lib/train/a.ts', "import { b } from './b';\nexport const a = () => b;\n");
    write('lib/train/b.ts', "import { a } from './a';\nexport const b = () => a;\n");
    const { status, output } = cruise(dir);
    expect(status).not.toBe(0);
    expect(output).toMatch(/no-cycle/);
    expect(output).toMatch(/lib\/train\/a\.ts/);
    expect(output).not.toMatch(/layer-/);
  });

  it('passes on lib/', () => {
    const { status, output } = cruise(ROOT);
    expect(output).toMatch(/no dependency violations/);
    expect(status).toBe(0);
  });
});
