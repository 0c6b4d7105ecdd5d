// Fair serving with the default limits: one request of 64 prompts of 8,192 characters (every
// prompt a request may hold, each as long as it may be) must not hold the server. A 20-token
// request sent 2 s later is answered in under 2 s while the heavy one primes, on both engines,
// and the heavy request still completes with the library's text. Before chunked priming and the
// per-call slot cap, the short request waited for the whole heavy one (7-13 s native, 12 s ONNX
// on a loaded 2-core machine).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import {
  BatchingGenerator,
  CharTokenizer,
  LanguageModel,
  exportOnnx,
  startServer,
} from '../../lib/index';

const corpus = 'the quick brown fox jumps over the lazy dog. ';
const tokenizer = CharTokenizer.fromText(corpus);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-fair-'));
// Sized so that priming 64 x 8,192 tokens takes seconds on either engine (onnxruntime's kernels
// are the faster ones here, so its model is the wider).
const makeModel = (hiddenSize: number) =>
  new LanguageModel({
    tokenizer,
    cell: 'lstm',
    hiddenSize,
    embeddingSize: 32,
    numLayers: 1,
    seed: 5,
  });
const models = { native: makeModel(128), onnx: makeModel(256) };
const long = corpus.repeat(Math.ceil(8192 / corpus.length)).slice(0, 8192);
const heavyPrompts = Array.from({ length: 64 }, () => long);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function open(engine: 'native' | 'onnx'): Promise<BatchingGenerator> {
  if (engine === 'native') return BatchingGenerator.fromModel(models.native);
  const file = path.join(tmp, 'fair.onnx');
  await exportOnnx(models.onnx, file, { kind: 'sequence' });
  return BatchingGenerator.fromOnnx(file);
}

describe.each(['native', 'onnx'] as const)('fair serving (%s engine)', (engine) => {
  it('answers a short request in under 2 s beside a heavy one, which still completes', async () => {
    const model = models[engine];
    const generator = await open(engine);
    const server = await startServer(generator, { port: 0 });
    try {
      const post = (body: unknown) =>
        fetch(`${server.url}/v1/generate`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
      const heavy = post({ prompts: heavyPrompts, max_tokens: 1, seed: 1 });
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const start = performance.now();
      const short = await post({ prompt: 'the quick', max_tokens: 20, seed: 2 });
      const shortBody = (await short.json()) as { completions: string[] };
      const waited = performance.now() - start;
      expect(short.status).toBe(200);
      expect(waited).toBeLessThan(2000);
      expect(shortBody.completions).toEqual(
        await model.generate({ prompts: ['the quick'], maxTokens: 20, seed: 2 }),
      );

      const done = await heavy;
      expect(done.status).toBe(200);
      const heavyBody = (await done.json()) as { completions: string[] };
      expect(heavyBody.completions).toHaveLength(64);
      // The native engine's arithmetic is the library's: the same text, primed in chunks or not.
      if (engine === 'native') {
        expect(heavyBody.completions).toEqual(
          await model.generate({ prompts: heavyPrompts, maxTokens: 1, seed: 1 }),
        );
      } else {
        for (const text of heavyBody.completions) expect(text).toHaveLength(1);
      }
    } finally {
      await server.close();
      await generator.close();
    }
  }, 180_000);
});
