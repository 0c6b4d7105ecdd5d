// Helpers of the serving load tests (loadtest.mjs, fleet.mjs): the config-M-like model they
// serve, `rnnkit serve` in a child process, the /health probe in a process of its own, and
// autocannon runs against POST /v1/completions.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
export const rnnkit = require(path.join(ROOT, 'dist', 'index.js'));

export const corpus = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');

/** Prompt i: 8 to 23 characters of the corpus, a different place for every request. */
export function prompt(i) {
  const start = (i * 7919) % (corpus.length - 64);
  return corpus.slice(start, start + 8 + (i % 16));
}

/**
 * A config-M-like model (LSTM, embedding 128, hidden 512, 2 layers, the tinyshakespeare
 * characters; random weights: speed does not depend on them) in a temporary folder, as a
 * checkpoint or its ONNX export. Its file name is `config-m` (the model's id in the OpenAI API).
 */
export async function configMModel({ onnx = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-loadtest-'));
  const model = new rnnkit.LanguageModel({
    tokenizer: rnnkit.CharTokenizer.fromText(corpus),
    cell: 'lstm',
    embeddingSize: 128,
    hiddenSize: 512,
    numLayers: 2,
    seed: 1,
  });
  const file = path.join(dir, 'config-m.safetensors');
  await model.save(file);
  if (!onnx) return file;
  const exported = path.join(dir, 'config-m.onnx');
  await rnnkit.exportOnnx(model, exported, { kind: 'sequence' });
  return exported;
}

/**
 * `rnnkit serve --model file --port 0 ...flags` (the built CLI) in a child process; resolves once
 * it listens, with its URL, the child and a promise of its exit code.
 */
export function startServe(file, flags = [], nodeFlags = []) {
  const cli = path.join(ROOT, 'dist', 'cli', 'bin.js');
  const argv = [...nodeFlags, cli, 'serve', '--model', file, '--port', '0', ...flags];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const url = /on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) resolve({ child, url, port: Number(new URL(url).port), exited });
    });
    child.on('exit', (code) => reject(new Error(`the server exited (code ${code}): ${out}`)));
  });
}

/**
 * The /health probe, in a process of its own so that its timings do not include the load
 * clients' work: GET /health every 100 ms. It also measures its own (idle) event-loop delay, which
 * is what the machine alone (other load, scheduling) does to any event loop, to read the server's
 * figures against.
 */
const PROBE = `
  const http = require('node:http');
  const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  let failures = 0;
  let stopped = false;
  (async () => {
    while (!stopped) {
      const t0 = performance.now();
      const status = await new Promise((resolve) =>
        http.get(process.argv[1] + '/health', { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        }).on('error', () => resolve(0)));
      times.push(performance.now() - t0);
      if (status !== 200) failures++;
      await new Promise((r) => setTimeout(r, 100));
    }
    times.sort((a, b) => a - b);
    console.log(JSON.stringify({
      healthMs: { p99: times[Math.floor(0.99 * (times.length - 1))], max: times.at(-1), probes: times.length, failures },
      idleLoopDelayMs: { p99: h.percentile(99) / 1e6, max: h.max / 1e6 },
    }));
    agent.destroy();
  })();
  process.stdin.resume();
  process.stdin.on('end', () => (stopped = true));`;

/** Starts the probe; the function it resolves with stops it and resolves with its figures. */
export function startProbe(url) {
  const child = spawn(process.execPath, ['-e', PROBE, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return async () => {
    child.stdin.end();
    await exited;
    return JSON.parse(out);
  };
}

/**
 * autocannon on POST /v1/completions of `url` for `seconds`: `connections` keep-alive
 * connections, each sending its next request when the last is answered, request i with prompt(i)
 * and seed i. Resolves with requests/s, latency p50/p99 (ms) and the failed requests (errors,
 * timeouts and non-2xx answers) with the first few failure statuses.
 */
export async function completionLoad(url, { model, connections, seconds, maxTokens }) {
  // A devDependency: loaded only by the runs that use it.
  const autocannon = require('autocannon');
  let i = 0;
  const statuses = new Map();
  const instance = autocannon({
    url,
    connections,
    duration: seconds,
    timeout: 60,
    requests: [
      {
        method: 'POST',
        path: '/v1/completions',
        headers: { 'content-type': 'application/json' },
        setupRequest(request) {
          const n = i++;
          const body = { model, prompt: prompt(n), max_tokens: maxTokens, seed: n };
          return { ...request, body: JSON.stringify(body) };
        },
      },
    ],
  });
  instance.on('response', (_client, status) => {
    if (status >= 300) statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  const r = await instance;
  return {
    requests: r.requests.total,
    requestsPerSecond: r.requests.total / (r.duration || seconds),
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
    failed: r.errors + r.timeouts + r.non2xx,
    failedStatuses: Object.fromEntries(statuses),
  };
}

/** Reads /metrics into a map of series -> value. */
export function metrics(url) {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/metrics`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const values = new Map();
          for (const line of text.split('\n')) {
            const m = /^(\S+) (\S+)$/.exec(line);
            if (m && !line.startsWith('#')) values.set(m[1], Number(m[2]));
          }
          resolve(values);
        });
      })
      .on('error', reject);
  });
}
