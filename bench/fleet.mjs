#!/usr/bin/env node
// Replicas behind a load balancer: three `rnnkit serve` replicas on 127.0.0.1 behind HAProxy
// (Debian's haproxy, run as a child with a generated config; health checks on GET /health),
// driven by autocannon on POST /v1/completions. It measures requests/s and latency p50/p99 with
// one, two and three replicas, then drains one replica with SIGTERM in the middle of a run with all
// three: HAProxy's health check takes it out, its requests in flight finish, and no request may
// fail. Exits 1 if any did.
//
//   npm run fleet-test -- [--seconds 15] [--drain-seconds 30] [--connections 32] [--max-tokens 32]
//                         [--model FILE] [--out FILE.json]
//
// Without --model it serves the load test's config-M-like model. Each replica computes on one
// thread; the machine's cores are shared by all of them.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { commandLine } from './common.mjs';
import { completionLoad, configMModel, startServe } from './serving.mjs';

const { values: args } = commandLine(
  `usage: npm run fleet-test -- [--seconds 15] [--drain-seconds 30] [--connections 32]
                              [--max-tokens 32] [--model FILE] [--out FILE.json]`,
  {
    seconds: { type: 'string', default: '15' },
    'drain-seconds': { type: 'string', default: '30' },
    connections: { type: 'string', default: '32' },
    'max-tokens': { type: 'string', default: '32' },
    model: { type: 'string' },
    out: { type: 'string' },
  },
  { counts: ['seconds', 'drain-seconds', 'connections', 'max-tokens'] },
);
const { seconds, connections } = args;
const drainSeconds = args['drain-seconds'];
const maxTokens = args['max-tokens'];

const HAPROXY = spawnSync('haproxy', ['-v']).error ? null : 'haproxy';
if (!HAPROXY) throw new Error('haproxy is not installed (apt-get install haproxy)');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * HAProxy in front of `replicas`: health checks on GET /health every 250 ms (down after one
 * failure, up after two passes); a request that meets a refused connection or a 503 (a draining
 * replica) is sent again to another replica (the body is buffered, so POSTs can be retried).
 */
function haproxyConfig(port, replicas) {
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response 503',
    '  option http-buffer-request',
    'frontend api',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance leastconn',
    '  option httpchk GET /health',
    '  http-check expect status 200',
    '  default-server inter 250 fall 1 rise 2',
    ...replicas.map((r, i) => `  server r${i + 1} 127.0.0.1:${r.port} check`),
    '',
  ].join('\n');
}

async function startHaproxy(replicas) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-fleet-'));
  const config = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(config, haproxyConfig(port, replicas));
  const check = spawnSync(HAPROXY, ['-c', '-q', '-f', config], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refused its config: ${check.stderr}`);
  const child = spawn(HAPROXY, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  // Up once every replica passed its health checks.
  for (let tries = 0; ; tries++) {
    const up = await new Promise((resolve) =>
      http
        .get(`${url}/health`, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        })
        .on('error', () => resolve(false)),
    );
    if (up && tries > 8) break;
    if (tries > 200) throw new Error('haproxy did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const file = args.model ?? (await configMModel());
const model = path.basename(file).replace(/\.[^.]*$/, '');
const load = { model, connections, maxTokens };
console.log(
  `fleet: ${file}; autocannon, ${connections} connections on POST /v1/completions, ` +
    `${maxTokens} tokens per request; ${os.cpus().length} CPUs`,
);
const replicas = [];
const report = { model: file, cpus: os.cpus().length, connections, maxTokens, replicas: {} };
let failed = 0;
try {
  for (let i = 0; i < 3; i++) {
    replicas.push(await startServe(file, ['--threads', '1']));
  }
  for (const n of [1, 2, 3]) {
    const lb = await startHaproxy(replicas.slice(0, n));
    try {
      const r = await completionLoad(lb.url, { ...load, seconds });
      report.replicas[n] = r;
      failed += r.failed;
      console.log(
        `${n} replica(s): ${r.requestsPerSecond.toFixed(1)} req/s, p50 ${r.latencyMs.p50} ms, ` +
          `p99 ${r.latencyMs.p99} ms, ${r.failed} failed`,
      );
    } finally {
      await lb.stop();
    }
  }
  // The drain: SIGTERM to the third replica a third of the way into a run over all three.
  const lb = await startHaproxy(replicas);
  try {
    const drained = replicas[2];
    let exitCode = null;
    const timer = setTimeout(
      () => {
        drained.child.kill('SIGTERM');
        drained.exited.then((code) => (exitCode = code));
      },
      (drainSeconds * 1000) / 3,
    );
    const r = await completionLoad(lb.url, { ...load, seconds: drainSeconds });
    clearTimeout(timer);
    await drained.exited;
    replicas.pop();
    report.drain = { ...r, sigtermAfterSeconds: drainSeconds / 3, drainedExitCode: exitCode };
    failed += r.failed;
    console.log(
      `drain (3 replicas, SIGTERM to one after ${(drainSeconds / 3).toFixed(0)} s): ` +
        `${r.requestsPerSecond.toFixed(1)} req/s, p50 ${r.latencyMs.p50} ms, ` +
        `p99 ${r.latencyMs.p99} ms, ${r.failed} failed ${JSON.stringify(r.failedStatuses)}; ` +
        `the drained replica exited with code ${exitCode}`,
    );
    if (exitCode !== 0) failed++;
  } finally {
    await lb.stop();
  }
} finally {
  for (const r of replicas) {
    r.child.kill('SIGTERM');
    await r.exited;
  }
}
console.log(JSON.stringify(report, null, 2));
if (args.out) fs.writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
console.log(failed === 0 ? 'PASS  no failed requests' : `FAIL  ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
