// The curl examples of docs/serving.md's OpenAI section, run as written against the server they
// name (`rnnkit serve --model model.safetensors --api-key sk-local-1`, a character model of
// tinyshakespeare), with only the port changed to the one it got.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, LanguageModel } from '../../lib/index';
import { ROOT } from '../helpers/cli';
import { serveCli, type ServeCli } from '../helpers/serve-cli';
import { tmpDir } from '../helpers/tmp';

const doc = fs.readFileSync(path.join(ROOT, 'docs', 'serving.md'), 'utf8');
const section = doc.slice(doc.indexOf('## OpenAI-compatible API'));
const examples = /```sh\n([\s\S]*?)```/
  .exec(section)![1]
  .split('\n')
  .filter((l) => l.startsWith('curl '));

const dir = tmpDir();
let server: ServeCli;

beforeAll(async () => {
  const text = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
  const model = new LanguageModel({
    tokenizer: CharTokenizer.fromText(text),
    hiddenSize: 32,
    seed: 3,
  });
  const file = path.join(dir, 'model.safetensors');
  await model.save(file);
  server = await serveCli(['--model', file, '--api-key', 'sk-local-1', '--threads', '1']);
});

afterAll(async () => {
  await server?.stop();
});

describe("docs/serving.md's curl examples", () => {
  it('are there', () => {
    expect(examples.length).toBe(4);
  });

  it('run as written', () => {
    const host = new URL(server.url).host;
    for (const example of examples) {
      const r = spawnSync('bash', ['-c', example.replaceAll('localhost:8080', host)], {
        encoding: 'utf8',
      });
      expect(r.status, example).toBe(0);
      if (example.includes('"stream": true')) {
        const events = r.stdout.trim().split('\n\n');
        expect(events.at(-1)).toBe('data: [DONE]');
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')));
        expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
      } else {
        const body = JSON.parse(r.stdout) as Record<string, unknown>;
        expect(body.error, example).toBeUndefined();
        expect(body.object, example).toMatch(/^(list|text_completion)$/);
      }
    }
  });
});
