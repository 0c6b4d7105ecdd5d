// The hostile-HTTP catalogue: oversized bodies (declared or chunked, from raw sockets that send
// everything before reading, and from Node's own client) get their 413 rather than a reset; bodies
// that are not application/json get 415; stop strings and every list field are bounded.
import * as http from 'node:http';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BatchingGenerator,
  CharTokenizer,
  LanguageModel,
  startServer,
  type RunningServer,
} from '../../lib/index';

const tokenizer = CharTokenizer.fromText('the quick brown fox jumps over the lazy dog. ');
let generator: BatchingGenerator;
let server: RunningServer;
let port: number;

beforeAll(async () => {
  const model = new LanguageModel({ tokenizer, hiddenSize: 16, embeddingSize: 8, seed: 2 });
  generator = await BatchingGenerator.fromModel(model, { maxBatch: 4 });
  server = await startServer(generator, { port: 0, bodyTimeout: 5000 });
  port = Number(new URL(server.url).port);
});

afterAll(async () => {
  await server.close();
  await generator.close();
});

/**
 * A raw client that writes its headers and all of its body (awaiting the socket's buffer each
 * time) before it reads anything, as the simplest clients do; resolves with what it read, or the
 * socket error's code.
 */
function rawClient(headers: string, body: Buffer, chunked = false): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let failed: string | null = null;
    socket.on('data', (d) => (text += String(d)));
    socket.on('error', (e: NodeJS.ErrnoException) => (failed = e.code ?? e.message));
    socket.on('close', () => resolve(failed ?? text));
    socket.on('connect', async () => {
      const write = (b: Buffer | string) =>
        new Promise<void>((done) => (socket.write(b) ? done() : socket.once('drain', done)));
      await write(headers);
      for (let at = 0; at < body.length && !failed; at += 256 << 10) {
        const piece = body.subarray(at, at + (256 << 10));
        await write(chunked ? `${piece.length.toString(16)}\r\n` : '');
        await write(piece);
        if (chunked) await write('\r\n');
      }
      if (chunked && !failed) await write('0\r\n\r\n');
    });
  });
}

const head = (extra: string) =>
  `POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;

describe('oversized bodies', () => {
  it('every raw client that sends a declared 8 MiB body first gets its 413', async () => {
    const body = Buffer.alloc(8 << 20, 0x61);
    const replies = await Promise.all(
      Array.from({ length: 6 }, () => rawClient(head(`Content-Length: ${body.length}\r\n`), body)),
    );
    for (const r of replies) {
      expect(r).toMatch(/^HTTP\/1\.1 413 /);
      expect(r).toMatch(/connection: close/i);
      expect(r).toMatch(/more than the limit of 1048576/);
    }
  });

  it('a chunked body over the limit gets its 413 too', async () => {
    const r = await rawClient(
      head('Transfer-Encoding: chunked\r\n'),
      Buffer.alloc(3 << 20, 0x61),
      true,
    );
    expect(r).toMatch(/^HTTP\/1\.1 413 /);
  });

  it("Node's http client sees 413, never ECONNRESET", async () => {
    const body = Buffer.alloc(4 << 20, 0x62);
    const one = () =>
      new Promise<string>((resolve) => {
        const req = http.request(
          { port, host: '127.0.0.1', path: '/v1/generate', method: 'POST', agent: false },
          (res) => {
            res.resume();
            res.on('end', () => resolve(String(res.statusCode)));
          },
        );
        req.setHeader('Content-Type', 'application/json');
        req.setHeader('Content-Length', body.length);
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        req.end(body);
      });
    const results = await Promise.all(Array.from({ length: 20 }, one));
    expect(results).toEqual(Array(20).fill('413'));
  });

  it('the server still serves after the flood', async () => {
    const res = await fetch(`${server.url}/v1/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'the', max_tokens: 3, seed: 1 }),
    });
    expect(res.status).toBe(200);
  });
});

describe('content types', () => {
  const body = JSON.stringify({ prompt: 'the', max_tokens: 2, seed: 1 });
  const send = (type: string | null) =>
    fetch(`${server.url}/v1/generate`, {
      method: 'POST',
      headers: type === null ? {} : { 'Content-Type': type },
      body: type === null ? new Blob([body]) : body,
    });

  for (const type of [
    'text/plain',
    'text/plain;charset=UTF-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonp',
    null,
  ]) {
    it(`415 for ${type ?? 'no Content-Type'}`, async () => {
      const res = await send(type);
      expect(res.status).toBe(415);
      expect(((await res.json()) as { error: string }).error).toMatch(/send application\/json/);
    });
  }

  it('200 for application/json with a charset, in any case', async () => {
    expect((await send('Application/JSON; charset=utf-8')).status).toBe(200);
  });
});

describe('list fields and their lengths', () => {
  const post = (fields: Record<string, unknown>) =>
    fetch(`${server.url}/v1/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'the', max_tokens: 2, ...fields }),
    });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a stop string too long', { stop: 'x'.repeat(257) }, /stop has 257 characters/],
    [
      '16 stop strings of 60,000 characters',
      { stop: Array(16).fill('y'.repeat(60000)) },
      /stop\[0\] has 60000 characters, more than the limit of 256/,
    ],
    ['17 stop strings', { stop: Array(17).fill('z') }, /stop has 17 strings/],
    ['65 prompts', { prompt: undefined, prompts: Array(65).fill('a') }, /1 to 64 strings/],
  ];
  for (const [name, fields, message] of cases) {
    it(`400 for ${name}`, async () => {
      const res = await post(fields);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    });
  }

  it('the limits are listed by /v1/model', async () => {
    const info = (await (await fetch(`${server.url}/v1/model`)).json()) as {
      limits: Record<string, number>;
    };
    expect(info.limits).toMatchObject({ max_stops: 16, max_stop_chars: 256 });
  });
});
