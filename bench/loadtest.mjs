#!/usr/bin/env node
// Load test for `rnnkit serve`: starts the server on 127.0.0.1 (a free port) in a child process,
// drives it with N concurrent clients (bounded by a request count and a time limit) while a probe
// process times GET /health, and reports requests/s, generated tokens/s, p50/p99 latency, errors,
// the server's event-loop delay and its memory. For scale it measures in-process batched
// generation (one generate call of `concurrency` prompts) of the same model and token counts
// before and after.
//
//   npm run loadtest -- [--model FILE] [--onnx] [--concurrency 64] [--requests 10000]
//                       [--duration 900] [--max-tokens 64] [--threads cores-1] [--out FILE.json]
//                       [--node-flags=--max-semi-space-size=1]   (node options for the server)
//                       [--api completions]
//
// With --api completions, autocannon drives POST /v1/completions (OpenAI's API) with
// `concurrency` connections for `duration` seconds instead, and the checks are the ones for that
// API: no failed request, /health p99 under 50 ms, and resident memory flat (within 10%) between
// the first and the last 10 s (sampled every second).
//
// Without --model it builds a config-M-like model (LSTM, embedding 128, hidden 512, 2 layers,
// the tinyshakespeare characters; random weights: speed does not depend on them) in a temporary
// folder, and with --onnx serves its ONNX export instead of the checkpoint.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { commandLine } from './common.mjs';
import {
  completionLoad,
  configMModel,
  metrics,
  prompt,
  rnnkit,
  startProbe,
  startServe,
} from './serving.mjs';

const { LanguageModel, OnnxGenerator, setThreads } = rnnkit;

const { values: args } = commandLine(
  `usage: npm run loadtest -- [--model FILE] [--onnx] [--concurrency 64] [--requests 10000]
                            [--duration 900] [--max-tokens 64] [--threads N] [--out FILE.json]
                            [--node-flags=FLAGS] [--api generate|completions]`,
  {
    model: { type: 'string' },
    onnx: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '64' },
    requests: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '900' },
    'max-tokens': { type: 'string', default: '64' },
    threads: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    out: { type: 'string' },
    api: { type: 'string', default: 'generate' },
  },
  { counts: ['concurrency', 'requests', 'duration', 'max-tokens', 'threads'] },
);
if (args.api !== 'generate' && args.api !== 'completions') {
  console.error(`--api must be generate or completions, got '${args.api}'`);
  process.exit(2);
}
const concurrency = args.concurrency;
const totalRequests = args.requests;
const durationMs = args.duration * 1000;
const maxTokens = args['max-tokens'];
// The server's default (all cores but one), and the same for the in-process baseline.
const threads = args.threads ?? Math.max(1, os.availableParallelism() - 1);
/** The request whose completion marks the start of the memory comparison. */
const memoryMark = Math.min(1000, Math.floor(totalRequests / 10));

/** Tokens/s of in-process batched generation: `concurrency` prompts in one generate call. */
async function inProcess(file) {
  const onnx = file.toLowerCase().endsWith('.onnx');
  if (!onnx) setThreads(threads);
  const generator = onnx
    ? await OnnxGenerator.load(file, { threads })
    : await LanguageModel.load(file);
  const prompts = Array.from({ length: concurrency }, (_, i) => prompt(i));
  const options = { prompts, maxTokens, seed: 1, maxBatch: concurrency };
  await generator.generate(options);
  const rates = [];
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    await generator.generate(options);
    // No stop strings: every prompt gets exactly maxTokens tokens.
    rates.push((concurrency * maxTokens) / ((performance.now() - t0) / 1000));
  }
  await generator.close();
  return rates.sort((a, b) => a - b)[1];
}

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function request(url, { method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    if (body) {
      req.setHeader('Content-Type', 'application/json');
      req.end(JSON.stringify(body));
    } else req.end();
  });
}

const quantile = (sorted, q) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;

async function drive(url) {
  const before = await metrics(url);
  const stopProbe = startProbe(url);
  const latencies = [];
  const errors = new Map();
  let issued = 0;
  let completed = 0;
  let markRss = null;
  /** RSS and the main thread's heap (MiB) every `memoryMark` requests: flat, or growing? */
  const rssSeries = [];
  const heapSeries = [];
  const started = performance.now();
  const deadline = started + durationMs;

  async function client() {
    while (issued < totalRequests && performance.now() < deadline) {
      const i = issued++;
      const t0 = performance.now();
      let outcome;
      try {
        const body = { prompt: prompt(i), max_tokens: maxTokens, seed: i };
        const res = await request(`${url}/v1/generate`, { method: 'POST', body });
        outcome = res.status === 200 ? null : `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
      } catch (error) {
        outcome = error.message;
      }
      latencies.push(performance.now() - t0);
      if (outcome) errors.set(outcome, (errors.get(outcome) ?? 0) + 1);
      const count = ++completed;
      if (count % memoryMark === 0) {
        const m = await metrics(url);
        const rss = m.get('process_resident_memory_bytes');
        if (count === memoryMark) markRss = rss;
        rssSeries.push(Math.round(rss / 2 ** 20));
        heapSeries.push(Math.round(m.get('nodejs_heap_size_used_bytes') / 2 ** 20));
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client));
  const elapsed = (performance.now() - started) / 1000;
  const after = await metrics(url);
  const probe = await stopProbe();
  if (probe.healthMs.failures > 0) errors.set('GET /health failed', probe.healthMs.failures);
  const tokens =
    after.get('rnnkit_generated_tokens_total') - (before.get('rnnkit_generated_tokens_total') ?? 0);
  latencies.sort((a, b) => a - b);
  const rss = (m) => m.get('process_resident_memory_bytes') / 2 ** 20;
  return {
    requests: completed,
    seconds: elapsed,
    requestsPerSecond: completed / elapsed,
    tokensPerSecond: tokens / elapsed,
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) },
    errors: Object.fromEntries(errors),
    errorCount: [...errors.values()].reduce((a, b) => a + b, 0),
    healthMs: probe.healthMs,
    eventLoopDelayMs: {
      p99: after.get('rnnkit_event_loop_delay_seconds{stat="p99"}') * 1000,
      max: after.get('rnnkit_event_loop_delay_seconds{stat="max"}') * 1000,
      idleProcessOnThisMachine: probe.idleLoopDelayMs,
    },
    rssMiB: {
      before: rss(before),
      [`at request ${memoryMark}`]: markRss / 2 ** 20,
      after: rss(after),
    },
    rssSeriesMiB: rssSeries,
    heapSeriesMiB: heapSeries,
    memoryGrowth: rss(after) / (markRss / 2 ** 20) - 1,
  };
}

/** Mean of the samples [seconds, value] taken within [from, to] seconds. */
function meanWithin(samples, from, to) {
  const within = samples.filter(([t]) => t >= from && t <= to).map(([, v]) => v);
  return within.reduce((a, b) => a + b, 0) / within.length;
}

/** autocannon on POST /v1/completions for the duration, RSS sampled every second. */
async function driveCompletions(url, model) {
  const stopProbe = startProbe(url);
  const rss = [];
  const started = performance.now();
  const sampler = setInterval(async () => {
    const m = await metrics(url);
    rss.push([
      (performance.now() - started) / 1000,
      m.get('process_resident_memory_bytes') / 2 ** 20,
    ]);
  }, 1000);
  const seconds = durationMs / 1000;
  const load = await completionLoad(url, { model, connections: concurrency, seconds, maxTokens });
  clearInterval(sampler);
  const probe = await stopProbe();
  const window = Math.min(10, seconds / 3);
  const first = meanWithin(rss, 0, window);
  const last = meanWithin(rss, seconds - window, seconds);
  return {
    ...load,
    errorCount: load.failed + probe.healthMs.failures,
    healthMs: probe.healthMs,
    idleLoopDelayMs: probe.idleLoopDelayMs,
    rssMiB: { [`first ${window} s`]: first, [`last ${window} s`]: last },
    rssSeriesMiB: rss.map(([, v]) => Math.round(v)),
    memoryGrowth: last / first - 1,
  };
}

const file = args.model ?? (await configMModel({ onnx: args.onnx }));
const serverFlags = [
  '--max-batch',
  String(concurrency),
  '--max-queue',
  String(4 * concurrency),
  '--threads',
  String(threads),
];
const nodeFlags = args['node-flags'].split(' ').filter(Boolean);
async function runCompletions() {
  console.log(`model ${file}; autocannon, ${concurrency} connections on POST /v1/completions`);
  const server = await startServe(file, serverFlags, nodeFlags);
  let result;
  try {
    result = await driveCompletions(server.url, path.basename(file).replace(/\.[^.]*$/, ''));
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  const report = { model: file, cpus: os.cpus().length, loadAverage: os.loadavg()[0], ...result };
  const checks = {
    'no failed requests': report.errorCount === 0,
    '/health p99 < 50 ms': report.healthMs.p99 < 50,
    'memory flat within 10% (first to last 10 s)': Math.abs(report.memoryGrowth) <= 0.1,
  };
  console.log(JSON.stringify(report, null, 2));
  for (const [name, ok] of Object.entries(checks)) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);
  if (args.out) fs.writeFileSync(args.out, JSON.stringify({ ...report, checks }, null, 2) + '\n');
}

async function runGenerate() {
  console.log(
    `model ${file}; ${concurrency} clients, ${totalRequests} requests, ${maxTokens} tokens each`,
  );
  // In-process speed is measured before and after the server run and the ratio taken to their
  // mean: on a machine whose speed drifts during the run (other load), that shows as a gap between
  // the two rather than as a wrong ratio.
  const inProcessBefore = await inProcess(file);
  console.log(
    `in-process batched generation at batch ${concurrency}: ${inProcessBefore.toFixed(0)} tokens/s`,
  );
  const server = await startServe(file, serverFlags, nodeFlags);
  let result;
  try {
    result = await drive(server.url);
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    agent.destroy();
  }
  const inProcessAfter = await inProcess(file);
  const report = {
    model: file,
    serverNodeFlags: args['node-flags'],
    cpus: os.cpus().length,
    loadAverage: os.loadavg()[0],
    concurrency,
    maxTokens,
    inProcessTokensPerSecond: { before: inProcessBefore, after: inProcessAfter },
    ...result,
    ratio: result.tokensPerSecond / ((inProcessBefore + inProcessAfter) / 2),
  };
  const checks = {
    'tokens/s >= 80% of in-process batched': report.ratio >= 0.8,
    'no errors': report.errorCount === 0,
    'event-loop delay p99 < 50 ms': report.eventLoopDelayMs.p99 < 50,
    '/health < 50 ms throughout': report.healthMs.max < 50,
    [`memory flat within 10% (request ${memoryMark} to the last)`]:
      Math.abs(report.memoryGrowth) <= 0.1,
  };
  console.log(JSON.stringify(report, null, 2));
  for (const [name, ok] of Object.entries(checks)) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);
  if (args.out) fs.writeFileSync(args.out, JSON.stringify({ ...report, checks }, null, 2) + '\n');
}

await (args.api === 'completions' ? runCompletions() : runGenerate());
