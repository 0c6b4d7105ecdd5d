// Who may call the server (lib/serve/access.ts): API keys from the options, the command line,
// RNNKIT_API_KEYS and a key file; /health open and /metrics as configured; CORS origins; and the
// statuses OpenAI clients rely on (429 and 503 with Retry-After, 400 on a seq2seq server).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BatchingGenerator,
  CharTokenizer,
  LanguageModel,
  startServer,
  type RunningServer,
  type Seq2Seq,
} from '../../lib/index';
import { attentionHeatmapSvg } from '../../lib/decode/heatmap';
import { tinySeq2Seq } from '../helpers/models';
import { serveCli } from '../helpers/serve-cli';
import { tmpDir } from '../helpers/tmp';

const corpus = 'the quick brown fox jumps over the lazy dog. ';
const dir = tmpDir();
const model = new LanguageModel({
  tokenizer: CharTokenizer.fromText(corpus),
  hiddenSize: 16,
  numLayers: 1,
  seed: 2,
});
const JSON_BODY = { 'Content-Type': 'application/json' };
const open: { close(): Promise<void> }[] = [];

afterAll(async () => {
  for (const o of open.reverse()) await o.close();
});

async function serve(
  options: Parameters<typeof startServer>[1],
  generatorOptions = {},
): Promise<RunningServer> {
  const g = await BatchingGenerator.fromModel(model, generatorOptions);
  open.push(g);
  const s = await startServer(g, { port: 0, ...options });
  open.push(s);
  return s;
}

const completion = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'rnnkit', prompt: 'the', max_tokens: 3, ...extra });

describe('API keys', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({ apiKeys: ['alpha', 'beta-key'] });
  });

  it('takes any of the keys and refuses others with 401', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { ...JSON_BODY, ...headers },
        body: completion(),
      });
    for (const key of ['alpha', 'beta-key']) {
      expect((await post({ Authorization: `Bearer ${key}` })).status).toBe(200);
    }
    for (const [auth, message] of [
      [undefined, /^missing API key/],
      ['Bearer alph', /^invalid API key$/],
      ['Bearer alpha2', /^invalid API key$/],
      ['Basic alpha', /^missing API key/],
    ] as const) {
      const r = await post(auth ? { Authorization: auth } : {});
      const body = (await r.json()) as { error: { message: string; type: string; code: string } };
      expect(r.status).toBe(401);
      expect(body.error).toEqual({
        message: expect.stringMatching(message),
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      });
    }
    // rnnkit's own routes need the key too, and keep their error shape.
    const own = await fetch(`${server.url}/v1/generate`, {
      method: 'POST',
      headers: JSON_BODY,
      body: '{"prompt":"the"}',
    });
    expect([own.status, await own.json()]).toEqual([
      401,
      { error: 'missing API key: send the header Authorization: Bearer <key>' },
    ]);
  });

  it('leaves /health and the playground open, and /metrics needs a key', async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/`)).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    const keyed = await fetch(`${server.url}/metrics`, {
      headers: { Authorization: 'Bearer alpha' },
    });
    expect(keyed.status).toBe(200);
    const open = await serve({ apiKeys: ['alpha'], metricsNeedKey: false });
    expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${open.url}/v1/models`)).status).toBe(401);
  });

  it('refuses an empty key or one with spaces', async () => {
    const g = await BatchingGenerator.fromModel(model);
    open.push(g);
    await expect(startServer(g, { port: 0, apiKeys: ['a b'] })).rejects.toThrow(
      /apiKeys\[0\] must be a non-empty string without spaces/,
    );
  });
});

describe('CORS', () => {
  it('allows listed origins and the page its own, and refuses others with 403', async () => {
    const server = await serve({ corsOrigins: ['https://app.example'] });
    const get = (origin: string) =>
      fetch(`${server.url}/v1/models`, { headers: { Origin: origin } });
    const allowed = await get('https://app.example');
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const own = await get(server.url);
    expect([own.status, own.headers.get('access-control-allow-origin')]).toEqual([200, null]);
    const other = await get('https://evil.example');
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: { message: string } }).error.message).toMatch(
      /origin https:\/\/evil.example is not allowed; start the server with --cors/,
    );
    const preflight = await fetch(`${server.url}/v1/completions`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    const any = await serve({ corsOrigins: ['*'] });
    const r = await fetch(`${any.url}/v1/models`, { headers: { Origin: 'https://x.example' } });
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
  });
});

describe('statuses for clients that retry', () => {
  it('answers 429 with Retry-After when the queue is full', async () => {
    const server = await serve({}, { maxBatch: 1, maxQueue: 0 });
    const long = fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: JSON_BODY,
      body: completion({ max_tokens: 2000 }),
    });
    let r: Response;
    do {
      r = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: JSON_BODY,
        body: completion(),
      });
    } while (r.status === 200);
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe('rate_limit_error');
    expect((await long).status).toBe(200);
  });

  for (const stream of [false, true]) {
    it(`answers 503 with Retry-After to a request behind a ${stream ? 'streaming' : 'whole'} completion while draining`, async () => {
      const server = await serve({ maxTokens: 20_000 });
      const { port } = new URL(server.url);
      const socket = net.connect(Number(port), '127.0.0.1');
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString()));
      const ended = new Promise((resolve) => socket.on('close', resolve));
      const request = (body: string) =>
        `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      // A long request in flight on a connection with a short one pipelined behind it, then
      // close(), then a third request on it. The first generates 20,000 tokens (about 0.6 s for
      // this model alone; 2,000 took about 60 ms, and could end before the close on a quiet
      // machine), and the close waits 200 ms for it to start on a loaded one. The second, read
      // with the first, is answered; the third comes after the close and gets a 503. While a
      // streamed answer fills the socket, Node reads no more of it: the third is read only once
      // the stream is out, and the close must wait for it rather than close the connection.
      socket.write(request(completion({ max_tokens: 20_000, stream })));
      socket.write(request(completion()));
      await new Promise((r) => setTimeout(r, 200));
      const closed = server.close();
      socket.write(request(completion()));
      await closed;
      await ended;
      const answers = received.split(/(?=HTTP\/1\.1 )/);
      expect(answers.map((a) => a.slice(0, 12))).toEqual([
        'HTTP/1.1 200',
        'HTTP/1.1 200',
        'HTTP/1.1 503',
      ]);
      expect(answers[2]).toMatch(/\r\nRetry-After: 1\r\n/i);
      const body = answers[2].slice(answers[2].indexOf('\r\n\r\n') + 4);
      expect(JSON.parse(body)).toEqual({
        error: {
          message: 'the server is shutting down',
          type: 'server_error',
          param: null,
          code: 'unavailable',
        },
      });
    });
  }
});

describe('a sequence-to-sequence server', () => {
  let server: RunningServer;
  let s2s: Seq2Seq;
  beforeAll(async () => {
    s2s = tinySeq2Seq();
    server = await startServer(s2s, { port: 0 });
    open.push(server);
  });

  it('answers /v1/completions with a 400 pointing to /v1/translate', async () => {
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: JSON_BODY,
      body: completion(),
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe(
      '/v1/completions: this server runs a sequence-to-sequence model; use POST /v1/translate',
    );
  });

  it('draws the attention of each best translation when asked', async () => {
    const r = await fetch(`${server.url}/v1/translate`, {
      method: 'POST',
      headers: JSON_BODY,
      body: JSON.stringify({ sources: ['abc'], beam: 2, n_best: 2, attention: true }),
    });
    const { translations } = (await r.json()) as {
      translations: { text: string; attention_svg: string }[];
    };
    const [t] = await s2s.translate(['abc'], { beam: 2, nBest: 2 });
    const best = t.hypotheses[0];
    expect(translations[0].attention_svg).toBe(
      attentionHeatmapSvg(t.sourceTokens, best.tokens, best.attention),
    );
    expect(translations[0].attention_svg).toMatch(/^<svg /);
  });
});

describe('rnnkit serve keys', () => {
  it('takes keys from --api-key, RNNKIT_API_KEYS and --api-key-file together', async () => {
    const file = path.join(dir, 'lm.safetensors');
    await model.save(file);
    const keys = path.join(dir, 'keys.txt');
    fs.writeFileSync(keys, '# the team\nfrom-file\n\n');
    process.env.RNNKIT_API_KEYS = 'from-env-1, from-env-2';
    let server;
    try {
      server = await serveCli([
        '--model',
        file,
        '--threads',
        '1',
        '--api-key',
        'from-flag',
        '--api-key-file',
        keys,
        '--public-metrics',
        '--no-playground',
      ]);
    } finally {
      delete process.env.RNNKIT_API_KEYS;
    }
    try {
      const models = (key: string) =>
        fetch(`${server.url}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
      for (const key of ['from-flag', 'from-env-1', 'from-env-2', 'from-file']) {
        const r = await models(key);
        expect(r.status, key).toBe(200);
        expect(((await r.json()) as { data: { id: string }[] }).data[0].id).toBe('lm');
      }
      expect((await models('# the team')).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${server.url}/`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
