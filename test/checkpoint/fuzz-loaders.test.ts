// The loaders' bounded fuzz run, kept in CI: a few hundred corrupted .safetensors and .onnx files
// of every mutation kind, each loaded in a child process (scripts/fuzz-loaders.js). None may crash,
// hang or load as a different model without an error. RNNKIT_FUZZ_SEED and RNNKIT_FUZZ_MUTANTS
// change the run; `npm run fuzz:loaders` runs a longer one.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const script = path.join(__dirname, '..', '..', 'scripts', 'fuzz-loaders.js');
const seed = process.env.RNNKIT_FUZZ_SEED ?? '14';
const mutants = process.env.RNNKIT_FUZZ_MUTANTS ?? '200';

interface FormatSummary {
  mutants: number;
  refused: number;
  identical: number;
  served: number;
  crash: number;
  hang: number;
  perKind: Record<string, string>;
  problems: unknown[];
}

describe('loader fuzzing', () => {
  it(`${mutants} mutants per format, seed ${seed}: no crash, hang or corrupted model served`, () => {
    const run = spawnSync(process.execPath, [script, '--mutants', mutants, '--seed', seed], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    expect(run.stderr).not.toMatch(/Error/);
    const summary = JSON.parse(run.stdout) as { formats: Record<string, FormatSummary> };
    for (const format of ['safetensors', 'onnx']) {
      const f = summary.formats[format];
      expect(f.mutants, format).toBe(Number(mutants));
      expect({
        format,
        crash: f.crash,
        hang: f.hang,
        served: f.served,
        problems: f.problems,
      }).toEqual({ format, crash: 0, hang: 0, served: 0, problems: [] });
      // Every kind ran, and the corruptions were refused rather than all landing in padding.
      for (const [kind, counts] of Object.entries(f.perKind)) {
        const [refused] = counts.split(' ').map(Number);
        expect(refused, `${format} ${kind}`).toBeGreaterThan(0);
      }
      expect(Object.keys(f.perKind).length).toBe(format === 'onnx' ? 9 : 10);
    }
    expect(run.status).toBe(0);
  });
});
