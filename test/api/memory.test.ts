// The memory of a loop that loads a model, generates and closes it, a few hundred times, on each
// backend (test/helpers/memory-loop.cjs, one child process each, run side by side): the native loop
// must not grow, and must stay within 1.5 times the ONNX loop's peak. (Before the parameters left
// SharedArrayBuffers and the addon fixed glibc's mmap threshold, it grew to three times the ONNX
// peak and kept growing; before close() and the loader freed their buffers at once, it held up to
// twice the ONNX peak in buffers waiting for a garbage collection.)
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel, exportOnnx } from '../../lib/index';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-memory-'));
const checkpoint = path.join(tmp, 'model.safetensors');
const exported = path.join(tmp, 'model.onnx');
const cycles = Number(process.env.RNNKIT_MEMORY_CYCLES ?? 150);
const MiB = 1 << 20;

beforeAll(async () => {
  const model = new LanguageModel({
    tokenizer: CharTokenizer.fromText('the quick brown fox jumps over the lazy dog. THE CAT!?'),
    hiddenSize: 192,
    embeddingSize: 48,
    numLayers: 2,
    seed: 1,
  });
  await model.save(checkpoint, { dtype: 'float16' });
  await exportOnnx(model, exported, { kind: 'step' });
});

async function loop(backend: 'native' | 'onnx', file: string): Promise<number[]> {
  const script = path.join(__dirname, '..', 'helpers', 'memory-loop.cjs');
  const { stdout } = await run(process.execPath, [script, backend, file, String(cycles)], {
    maxBuffer: 1 << 20,
  });
  return (JSON.parse(stdout) as number[]).map((bytes) => bytes / MiB);
}

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;

describe('native load/generate/drop loop', () => {
  it(`${cycles} cycles: flat, and within 1.5 times the ONNX loop's peak`, async () => {
    const [native, onnx] = await Promise.all([loop('native', checkpoint), loop('onnx', exported)]);
    const nativePeak = Math.max(...native);
    const onnxPeak = Math.max(...onnx);
    const early = mean(native.slice(cycles / 3, (2 * cycles) / 3));
    const late = mean(native.slice((2 * cycles) / 3));
    expect({ nativePeak, onnxPeak, early, late }).toSatisfy(
      () => late <= early + 24 && nativePeak <= 1.5 * onnxPeak,
    );
  });
});
