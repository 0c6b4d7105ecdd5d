#!/usr/bin/env node
// rnnkit's benchmark: the workloads of BENCH.md (docs/performance.md) on rnnkit, with PyTorch on
// the CPU and onnxruntime-node measured in the same run, and the BLAS GEMM ceiling at each
// workload's shapes. Every measurement runs in its own child process, so that its peak RSS is its
// own and one system's thread pools never share a process with another's:
//   bench/rnnkit_worker.mjs   rnnkit (the built package, ../dist) and the GEMM ceiling
//   bench/torch_ref.py        PyTorch, and the torch.onnx.export of the one-step model
//   bench/ort_worker.mjs      onnxruntime-node running an exported one-step model
// This process plans, starts them one at a time (never two measurements at once), and prints a
// markdown table to stdout (progress goes to stderr) and the full record to bench/results/.
//
// Usage: npm run bench -- [--quick] [--only SUBSTRING] [--threads N] [--reps N] [--json PATH]
//                         [--python PATH] [--addon FILE] [--no-references]
// `npx rnnkit bench` calls main(argv) below.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  allWorkloads,
  ceilingOf,
  flopsPerToken,
  gemmShapes,
  shapeKey,
  stepsPerIteration,
  tokensPerIteration,
} from './workloads.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);

const USAGE = `Usage: npm run bench -- [options]
   or: npx rnnkit bench [options]
   or: node bench/run.mjs [options]

Runs the BENCH.md workloads on rnnkit, PyTorch (CPU) and onnxruntime-node in one run and prints
a markdown table; the full record goes to bench/results/latest.json.

  --quick           tiny shapes, 1 repetition, one thread count: a smoke test (< 1 min) that
                    checks every path runs; its numbers mean nothing
  --only SUBSTRING  only workloads whose id contains it (ids: train/S/lstm, train/M/gru,
                    forward/M/lstm, generate/M/lstm/b64, seq2seq/train/dot,
                    seq2seq/translate/beam5/b64, ...); repeatable, any may match
  --threads N       thread count (default 2); every system is also tried at 1 thread and the
                    faster setting is kept (both are recorded)
  --reps N          timed repetitions per measurement, median reported (default 5)
  --json PATH       where to write the JSON record (default bench/results/latest.json)
  --python PATH     the Python with torch (default: $RNNKIT_BENCH_PYTHON, /usr/bin/python3,
                    python3, the first that imports torch)
  --addon FILE      also measure rnnkit with this addon file (RNNKIT_ADDON), as the system
                    "rnnkit (FILE)": e.g. a -march=native source build beside the prebuilt one
  --no-references   measure rnnkit (and --addon) and the GEMM ceiling only, not PyTorch or
                    onnxruntime
  -h, --help        this text

Build first: npm run build:native && npm run build.`;

/** Not a system: the GEMM-ceiling measurement, scheduled like one. */
const CEILING = 'GEMM ceiling';

export const SYSTEMS = {
  rnnkit: 'rnnkit',
  torch: 'PyTorch',
  ortTorch: 'onnxruntime (torch export)',
  ortRnnkit: 'onnxruntime (rnnkit export)',
  onnxGenerator: 'rnnkit OnnxGenerator',
  addon: 'rnnkit (--addon)',
};

export function parseArgs(argv) {
  const o = {
    quick: false,
    only: [],
    threads: 2,
    reps: null,
    json: null,
    python: null,
    addon: null,
    references: true,
    help: false,
  };
  const value = (i, name) => {
    if (i + 1 >= argv.length) throw new RangeError(`${name} needs a value`);
    return argv[i + 1];
  };
  const positive = (v, name) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`${name} must be a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '--only') o.only.push(value(i++, a));
    else if (a === '--threads') o.threads = positive(value(i++, a), a);
    else if (a === '--reps') o.reps = positive(value(i++, a), a);
    else if (a === '--json') o.json = value(i++, a);
    else if (a === '--python') o.python = value(i++, a);
    else if (a === '--addon') o.addon = path.resolve(value(i++, a));
    else if (a === '--no-references') o.references = false;
    else throw new RangeError(`unknown option ${a}\n\n${USAGE}`);
  }
  o.reps ??= o.quick ? 1 : 5;
  if (o.addon !== null && !fs.existsSync(o.addon))
    throw new RangeError(`--addon names ${o.addon}, which is not there`);
  o.json ??= path.join(here, 'results', 'latest.json');
  return o;
}

const log = (...a) => console.error(...a);

/** Runs one worker to completion; resolves with its result JSON (or a status: 'error' record). */
function runChild(command, args, task, { env, timeoutMs, tmp }) {
  const out = path.join(tmp, `result-${process.hrtime.bigint()}.json`);
  const full = { ...task, out };
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, [...args, JSON.stringify(full)], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = (extra) => {
      clearTimeout(timer);
      let result;
      try {
        result = JSON.parse(fs.readFileSync(out, 'utf8'));
        fs.rmSync(out, { force: true });
      } catch {
        result = { status: 'error', reason: `no result (${extra}); stderr: ${stderr.trim()}` };
      }
      if (result.status === 'error' && stderr.trim()) result.stderr = stderr.trim();
      result.wallSeconds = (Date.now() - started) / 1000;
      resolve(result);
    };
    child.on('error', (e) => finish(e.message));
    child.on('close', (code, signal) =>
      finish(signal ? `killed by ${signal}` : `exit code ${code}`),
    );
  });
}

/** Environment that fixes every thread pool a child might start, before it starts. */
function threadEnv(threads) {
  const n = String(threads);
  return {
    OMP_NUM_THREADS: n,
    OPENBLAS_NUM_THREADS: n,
    MKL_NUM_THREADS: n,
    OMP_WAIT_POLICY: 'PASSIVE',
  };
}

function git(args) {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function mtime(p) {
  try {
    return fs.statSync(path.join(root, p)).mtime.toISOString();
  } catch {
    return null;
  }
}

/** The first Python that imports torch, with torch's version and BLAS; null when there is none. */
async function findTorch(opts, ctx) {
  const candidates = [opts.python, process.env.RNNKIT_BENCH_PYTHON, '/usr/bin/python3', 'python3'];
  const tried = [];
  for (const py of candidates.filter(Boolean)) {
    if (tried.includes(py)) continue;
    tried.push(py);
    const r = await runChild(
      py,
      [path.join(here, 'torch_ref.py')],
      { kind: 'probe', threads: 1 },
      {
        ...ctx,
        env: threadEnv(1),
      },
    );
    if (r.status === 'ok') return { python: py, info: r.info };
  }
  return { python: null, tried };
}

function ortInstalled() {
  try {
    require.resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
}

function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Fewer digits for large values, enough for small ones. */
function fmtAuto(n) {
  if (!Number.isFinite(n)) return '—';
  return fmt(n, n >= 100 ? 0 : n >= 10 ? 1 : n >= 1 ? 2 : 3);
}

function markdownTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [
    line(header),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rows.map(line),
  ].join('\n');
}

/** The fastest successful run of a system on a workload (all runs stay in the record). */
function best(runs) {
  const ok = runs.filter((r) => r.status === 'ok');
  if (ok.length) return ok.reduce((a, b) => (b.msPerIteration < a.msPerIteration ? b : a));
  return runs.find((r) => r.status === 'error') ?? runs[0];
}

export async function main(argv = process.argv.slice(2)) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (error) {
    console.error(error.message);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  let rnnkit;
  try {
    rnnkit = require('../dist/index.js');
  } catch (error) {
    console.error(`rnnkit bench: cannot load the built package (${error.message});\n${USAGE}`);
    return 1;
  }

  const workloads = allWorkloads(opts.quick).filter(
    (w) => opts.only.length === 0 || opts.only.some((s) => w.id.includes(s)),
  );
  if (workloads.length === 0) {
    console.error(`no workload matches --only ${opts.only.join(', ')}`);
    return 2;
  }
  const threadCandidates = opts.quick || opts.threads === 1 ? [opts.threads] : [opts.threads, 1];
  const timing = opts.quick ? { reps: 1, minRepMs: 1 } : { reps: opts.reps, minRepMs: 300 };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-bench-'));
  const ctx = { tmp, timeoutMs: (opts.quick ? 120 : 900) * 1000 };
  const notices = [];
  let failed = false;
  const startedAt = new Date();
  const loadStart = os.loadavg();

  try {
    // What is available to compare with.
    const torch = opts.references
      ? await findTorch(opts, ctx)
      : { python: null, tried: ['none (--no-references)'] };
    if (!torch.python) {
      notices.push(
        `PyTorch reference skipped: torch is not installed for ${torch.tried.join(', ')}`,
      );
    }
    const haveOrt = opts.references && ortInstalled();
    const wantsGenerate = workloads.some((w) => w.kind === 'generate');
    if (wantsGenerate && !haveOrt)
      notices.push('onnxruntime-node not installed: its rows are skipped');

    // The step model of each distinct generate model, exported once by torch.onnx.export and
    // once by rnnkit's exportOnnx (same architecture; each its own random weights), shared by
    // every batch size and thread count; an int8 model by rnnkit alone, from the same weights as
    // rnnkit's int8 rows. The files live in the temporary folder.
    const exports = new Map();
    const modelKey = (w) => `${w.cell}-${w.E}-${w.H}-${w.L}-${w.V}-${w.weights ?? 'float32'}`;
    const viaOrt = (w) => w.kind === 'generate' && (!w.weights || w.weights === 'int8');
    if (wantsGenerate && haveOrt) {
      for (const w of workloads.filter(viaOrt)) {
        const key = modelKey(w);
        if (exports.has(`rnnkit:${key}`)) continue;
        const exporters = [
          ['torch', torch.python ? [torch.python, path.join(here, 'torch_ref.py')] : null],
          ['rnnkit', [process.execPath, path.join(here, 'rnnkit_worker.mjs')]],
        ];
        for (const [by, cmd] of w.weights ? exporters.slice(1) : exporters) {
          if (!cmd) {
            exports.set(`${by}:${key}`, {
              status: 'unavailable',
              reason: 'torch is not installed',
            });
            continue;
          }
          const file = path.join(tmp, `${by}-step-${key}.onnx`);
          log(`exporting the ${key} step model with ${by} ...`);
          const task = { kind: 'export-onnx', workload: w, path: file, threads: opts.threads };
          const r = await runChild(cmd[0], cmd.slice(1), task, {
            ...ctx,
            env: threadEnv(opts.threads),
          });
          if (r.status !== 'ok') notices.push(`${by} ONNX export ${r.status}: ${r.reason}`);
          if (r.status === 'error') failed = true;
          exports.set(`${by}:${key}`, r);
        }
      }
    }

    // The measurements: per workload, each thread count, each system in turn (interleaved, so
    // that load from elsewhere on the machine drifts onto all systems alike).
    const runsOf = new Map();
    const record = (w, system, r) => {
      const key = `${w.id}\u0000${system}`;
      if (!runsOf.has(key)) runsOf.set(key, []);
      runsOf.get(key).push(r);
    };
    // The GEMM ceiling of a workload is measured right after rnnkit's run at the same thread
    // count (the machine's load then is as close as it gets to the load the run saw), in a
    // process of its own so that its buffers do not count in rnnkit's peak RSS.
    const ceilingOfRun = new Map();
    const plan = [];
    for (const w of workloads) {
      const distinct = new Map(gemmShapes(w).map((g) => [shapeKey(g), g]));
      const shapes = [...distinct.values()].map(({ M, N, K, transA, transB }) => {
        return { M, N, K, transA, transB };
      });
      for (const threads of threadCandidates) {
        const task = { kind: 'workload', workload: w, threads, ...timing };
        plan.push({ w, threads, system: SYSTEMS.rnnkit, task });
        if (opts.addon) plan.push({ w, threads, system: SYSTEMS.addon, task });
        const ceilingTiming = { reps: timing.reps, minRepMs: opts.quick ? 1 : 50 };
        plan.push({
          w,
          threads,
          system: CEILING,
          task: { kind: 'ceiling', threads, shapes, ...ceilingTiming },
        });
        // PyTorch runs float32 weights only; onnxruntime runs int8 too, on rnnkit's int8 export
        // of the same weights (bf16 rows, of weights or of training, are rnnkit's alone).
        if (torch.python && !w.weights && !w.precision) {
          plan.push({ w, threads, system: SYSTEMS.torch, task });
        }
        if (haveOrt && viaOrt(w)) {
          const viaOnnx = [
            [SYSTEMS.ortTorch, 'torch', { ...task, model: '' }],
            [SYSTEMS.ortRnnkit, 'rnnkit', { ...task, model: '' }],
            [SYSTEMS.onnxGenerator, 'rnnkit', { ...task, onnx: '' }],
          ];
          for (const [system, by, t] of w.weights ? viaOnnx.slice(1, 2) : viaOnnx) {
            const exported = exports.get(`${by}:${modelKey(w)}`);
            if (exported?.status === 'ok') {
              if ('model' in t) t.model = exported.path;
              else t.onnx = exported.path;
              plan.push({ w, threads, system, task: t });
            } else {
              const reason = `no ${by} export: ${exported?.reason ?? 'not attempted'}`;
              record(w, system, { status: 'unavailable', reason, threads });
            }
          }
        }
      }
    }
    const rnnkitWorker = [process.execPath, path.join(here, 'rnnkit_worker.mjs')];
    const command = {
      [SYSTEMS.rnnkit]: rnnkitWorker,
      [CEILING]: rnnkitWorker,
      [SYSTEMS.torch]: [torch.python, path.join(here, 'torch_ref.py')],
      [SYSTEMS.ortTorch]: [process.execPath, path.join(here, 'ort_worker.mjs')],
      [SYSTEMS.ortRnnkit]: [process.execPath, path.join(here, 'ort_worker.mjs')],
      [SYSTEMS.onnxGenerator]: rnnkitWorker,
      [SYSTEMS.addon]: rnnkitWorker,
    };
    // A job is one child process: one measurement, or with --quick every measurement of one
    // system at one thread count (process start-up, torch's above all, would dominate otherwise).
    const jobs = [];
    for (const item of plan) {
      const last = jobs.find((j) => j.system === item.system && j.threads === item.threads);
      if (opts.quick && last) last.items.push(item);
      else jobs.push({ system: item.system, threads: item.threads, items: [item] });
    }
    let done = 0;
    for (const job of jobs) {
      const [cmd, ...args] = command[job.system];
      const tasks = job.items.map((it) => it.task);
      const addonEnv = job.system === SYSTEMS.addon ? { RNNKIT_ADDON: opts.addon } : {};
      const options = { ...ctx, env: { ...threadEnv(job.threads), ...addonEnv } };
      const r = await runChild(cmd, args, tasks.length === 1 ? tasks[0] : { tasks }, options);
      const list = tasks.length === 1 ? [r] : Array.isArray(r) ? r : tasks.map(() => r);
      job.items.forEach(({ w, system, threads }, k) => {
        const one = { ...list[k], threads };
        let what;
        if (system === CEILING) {
          if (one.status === 'ok') {
            const field = (f) => Object.fromEntries(one.shapes.map((g) => [shapeKey(g), g[f]]));
            const m = {
              wall: ceilingOf(w, field('gflops')),
              cpu: ceilingOf(w, field('cpuGflops')),
              blasCpu: ceilingOf(w, field('blasCpuGflops')),
              builtin: ceilingOf(w, field('builtinGflops')),
              builtinCpu: ceilingOf(w, field('builtinCpuGflops')),
              shapes: one.shapes,
            };
            ceilingOfRun.set(`${w.id}\u0000${threads}`, m);
            what = `GEMM ceiling ${fmt(m.wall.gflops, 1)} GFLOP/s`;
          } else {
            failed = true;
            notices.push(`GEMM ceiling of ${w.id} at ${threads} thread(s) failed: ${one.reason}`);
            what = `GEMM ceiling ${one.status}`;
          }
        } else {
          record(w, system, one);
          what =
            one.status === 'ok'
              ? `${fmt((tokensPerIteration(w) * 1000) / one.msPerIteration)} tokens/s`
              : `${one.status}: ${String(one.reason).split('\n')[0]}`;
        }
        const took = tasks.length === 1 ? ` (${fmt(r.wallSeconds, 1)} s)` : '';
        log(`[${++done}/${plan.length}] ${w.id} ${system} ${threads}t: ${what}${took}`);
      });
    }

    // Rows: the best run of each system, with throughput, memory, ratio and GFLOP/s.
    const results = [];
    const rows = [];
    const ceilingRows = [];
    const cpuRows = [];
    for (const w of workloads) {
      const tokens = tokensPerIteration(w);
      const flops = flopsPerToken(w);
      const entry = {
        id: w.id,
        workload: w,
        tokensPerIteration: tokens,
        flopsPerToken: flops,
        systems: {},
      };
      const rnnkitBest = best(runsOf.get(`${w.id}\u0000${SYSTEMS.rnnkit}`) ?? []);
      const ceilings = {};
      for (const t of threadCandidates) {
        const m = ceilingOfRun.get(`${w.id}\u0000${t}`);
        if (!m?.wall) continue;
        ceilings[t] = {
          ...m.wall,
          cpuGflops: m.cpu?.gflops,
          blasCpuGflops: m.blasCpu?.gflops,
          builtinGflops: m.builtin?.gflops,
          builtinCpuGflops: m.builtinCpu?.gflops,
          shapes: m.shapes,
        };
      }
      entry.gemmCeiling = ceilings;
      // The ceiling table shows the thread count rnnkit ran best at, and one thread by CPU time.
      const ct = rnnkitBest?.status === 'ok' ? rnnkitBest.threads : opts.threads;
      const c = ceilings[ct];
      if (c) {
        const d = c.dominant;
        const more = d.uses.length > 1 ? ` +${d.uses.length - 1} more` : '';
        ceilingRows.push([
          w.id,
          fmt(ceilings[1]?.cpuGflops, 1),
          fmt(ceilings[1]?.blasCpuGflops, 1),
          fmt(ceilings[1]?.builtinCpuGflops, 1),
          `${fmt(c.gflops, 1)} (${ct}t)`,
          `${d.key}: ${d.uses[0]}${more} (${fmt((100 * d.flops) / c.flops)}% of FLOPs)`,
          fmt(c.gemmSeconds * 1000, 2),
        ]);
      }
      const rnnkitRate =
        rnnkitBest?.status === 'ok' ? (tokens * 1000) / rnnkitBest.msPerIteration : NaN;
      const oneThread = (system) =>
        runsOf.get(`${w.id}\u0000${system}`)?.find((r) => r.status === 'ok' && r.threads === 1);
      const rnnkitCpu = oneThread(SYSTEMS.rnnkit);
      const rnnkitCpuRate = rnnkitCpu ? (tokens * 1000) / rnnkitCpu.cpuMsPerIteration : NaN;
      for (const system of Object.values(SYSTEMS)) {
        const runs = runsOf.get(`${w.id}\u0000${system}`);
        if (!runs) continue;
        const b = best(runs);
        if (runs.some((r) => r.status === 'error')) failed = true;
        const s = { status: b.status, runs };
        if (b.status === 'ok') {
          const rate = (tokens * 1000) / b.msPerIteration;
          const gflops = (rate * flops) / 1e9;
          const ceiling = ceilings[b.threads];
          Object.assign(s, {
            threads: b.threads,
            tokensPerSecond: rate,
            msPerIteration: b.msPerIteration,
            msPerStep: b.msPerStep,
            peakRssMB: b.peakRssMB,
            baselineRssMB: b.baselineRssMB,
            weightMB: b.weightMB ?? null,
            gflops,
            ceilingGflops: ceiling?.gflops ?? null,
            fractionOfCeiling: ceiling ? gflops / ceiling.gflops : null,
            ratioRnnkitOverThis: rnnkitRate / rate,
          });
          const one = oneThread(system);
          if (one) {
            const cpuRate = (tokens * 1000) / one.cpuMsPerIteration;
            const cpuGflops = (cpuRate * flops) / 1e9;
            s.oneThreadCpu = {
              cpuMsPerIteration: one.cpuMsPerIteration,
              tokensPerCpuSecond: cpuRate,
              gflopsPerCpuSecond: cpuGflops,
              fractionOfCeiling: ceilings[1] ? cpuGflops / ceilings[1].cpuGflops : null,
              ratioRnnkitOverThis: rnnkitCpuRate / cpuRate,
            };
            cpuRows.push([
              w.id,
              system,
              fmt(cpuRate),
              fmtAuto(one.cpuMsPerIteration / stepsPerIteration(w)),
              system === SYSTEMS.rnnkit || !Number.isFinite(rnnkitCpuRate)
                ? ''
                : `${fmt(rnnkitCpuRate / cpuRate, 2)}×`,
              fmt(cpuGflops, 1),
              ceilings[1] ? `${fmt((100 * cpuGflops) / ceilings[1].cpuGflops)}%` : '—',
            ]);
          }
          rows.push([
            w.id,
            system,
            b.threads,
            fmt(rate),
            fmtAuto(b.msPerStep),
            `${fmt(b.peakRssMB)} (+${fmt(b.peakRssMB - b.baselineRssMB)})`,
            system === SYSTEMS.rnnkit || !Number.isFinite(rnnkitRate)
              ? ''
              : `${fmt(rnnkitRate / rate, 2)}×`,
            fmt(gflops, 1),
            ceiling ? `${fmt((100 * gflops) / ceiling.gflops)}%` : '—',
          ]);
        } else {
          s.reason = b.reason;
          const why = b.status === 'unavailable' ? `unavailable: ${b.reason}` : 'ERROR (see JSON)';
          rows.push([w.id, system, '', why, '', '', '', '', '']);
        }
        entry.systems[system] = s;
      }
      results.push(entry);
    }

    // Generation and translation on int8 and bf16 weights beside float32 (same model, search and
    // batch): rnnkit's rate, the peak RSS, generation's packed weights' size and onnxruntime's
    // rate on rnnkit's export of the same weights (float32 and int8).
    const weightRows = [];
    const rnnkitOf = (id) => results.find((e) => e.id === id)?.systems[SYSTEMS.rnnkit];
    for (const e of results) {
      const r = e.systems[SYSTEMS.rnnkit];
      if (!['generate', 'translate'].includes(e.workload.kind) || r?.status !== 'ok') continue;
      const f32 = rnnkitOf(e.id.replace(/\/(int8|bf16)\//, '/'));
      const ort = e.systems[SYSTEMS.ortRnnkit];
      const ortOk = ort?.status === 'ok';
      weightRows.push([
        e.id,
        e.workload.weights ?? 'float32',
        fmt(r.tokensPerSecond),
        f32?.status === 'ok' ? `${fmt(r.tokensPerSecond / f32.tokensPerSecond, 2)}×` : '—',
        ortOk ? fmt(ort.tokensPerSecond) : '—',
        ortOk ? `${fmt(r.tokensPerSecond / ort.tokensPerSecond, 2)}×` : '—',
        fmt(r.weightMB, 1),
        fmt(r.peakRssMB),
      ]);
    }

    // Mixed-precision training beside float32 training of the same workload.
    for (const e of results) {
      const r = e.systems[SYSTEMS.rnnkit];
      if (!e.workload.precision || r?.status !== 'ok') continue;
      const f32 = rnnkitOf(e.id.replace(`/${e.workload.precision}`, ''));
      if (f32?.status !== 'ok') continue;
      notices.push(
        `${e.id}: ${fmt(r.tokensPerSecond / f32.tokensPerSecond, 2)}× float32 training ` +
          `(${fmt(r.tokensPerSecond)} vs ${fmt(f32.tokensPerSecond)} tokens/s)`,
      );
    }

    const info = rnnkit.info();
    // An exported tree (git archive) has no .git: its runner names the commit in the environment.
    const head = git(['rev-parse', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--untracked-files=no']);
    const meta = {
      date: startedAt.toISOString(),
      commit: head ?? process.env.RNNKIT_BENCH_COMMIT ?? null,
      dirty: dirty ? dirty.split('\n') : [],
      built: { addon: mtime(path.relative(root, info.addon)), dist: mtime('dist/index.js') },
      comparedAddon: opts.addon,
      options: { quick: opts.quick, only: opts.only, threads: opts.threads, reps: timing.reps },
      threadCandidates,
      gemm: info.gemm,
      openblasCore: info.blasCore || null,
      openblasCoretypeEnv: process.env.OPENBLAS_CORETYPE ?? null,
      rnnkitInfo: info,
      node: process.version,
      python: torch.python,
      torch: torch.info ?? null,
      onnxruntimeNode: haveOrt ? require('onnxruntime-node/package.json').version : null,
      host: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        memoryGB: os.totalmem() / 2 ** 30,
        loadavgStart: loadStart,
        loadavgEnd: os.loadavg(),
      },
      timing: {
        protocol:
          'per measurement: 1 calibrating warm-up iteration, 1 warm-up repetition, then reps timed ' +
          'repetitions of `inner` iterations each (>= minRepMs); median ms per iteration',
        ...timing,
      },
      ceilingDefinition:
        'time-weighted: the workload FLOPs divided by the time its textbook GEMMs (gemmShapes) take ' +
        "at the standalone GFLOP/s of rnnkit's native gemm at each shape, same thread count",
    };
    const record_ = { meta, notices, workloads: results };
    // An installed package's folder may be read-only: the tables still print, with the reason.
    let unsaved = null;
    try {
      fs.mkdirSync(path.dirname(opts.json), { recursive: true });
      fs.writeFileSync(opts.json, JSON.stringify(record_, null, 2) + '\n');
    } catch (error) {
      unsaved = `cannot write the JSON record to ${opts.json} (${error.message}); pass --json PATH`;
    }

    const commit = head
      ? `${head.slice(0, 10)}${meta.dirty.length ? ' (+ uncommitted changes)' : ''}`
      : (meta.commit ?? 'unknown');
    console.log(
      `## rnnkit benchmark${opts.quick ? ' (--quick: smoke test, numbers mean nothing)' : ''}\n\n` +
        `${meta.date}, commit ${commit}; rnnkit ${info.isa} kernels (${info.addonSource})${opts.addon ? `, "rnnkit (--addon)" = ${opts.addon}` : ''}; BLAS ${info.gemm}${meta.openblasCore ? ` (OpenBLAS kernels: ${meta.openblasCore})` : ''}, multi-row products on ${info.products}; threads ${threadCandidates.join(' and ')} ` +
        `(best kept); median of ${timing.reps}; ${meta.host.cpu}, ${meta.host.cores} cores, ` +
        `load ${loadStart.map((x) => x.toFixed(1)).join(' ')}; PyTorch ${torch.info?.torch ?? 'n/a'}\n`,
    );
    console.log(
      markdownTable(
        [
          'workload',
          'system',
          'threads',
          'tokens/s',
          'ms/step',
          'peak RSS MB (+over start)',
          'rnnkit ÷ this',
          'GFLOP/s',
          '% of GEMM ceiling',
        ],
        rows,
      ),
    );
    if (cpuRows.length) {
      console.log(
        '\nThe same runs at one thread, by process CPU time (time spent preempted by other work ' +
          'on the machine does not count, so these ratios hold on a busy machine):\n',
      );
      console.log(
        markdownTable(
          [
            'workload',
            'system',
            'tokens/CPU-s',
            'CPU ms/step',
            'rnnkit ÷ this',
            'GFLOP/CPU-s',
            '% of GEMM ceiling',
          ],
          cpuRows,
        ),
      );
    }
    if (ceilingRows.length) {
      console.log(
        `\nGEMM ceiling: sgemm at each workload's own GEMM shapes, time-weighted (its FLOPs over ` +
          `the time those GEMMs alone take), on the GEMM rnnkit's layers use (${info.products} for ` +
          `multi-row products), and beside it OpenBLAS and the built-in GEMM on their own, at one ` +
          `thread by CPU time; then rnnkit's GEMM by wall time at the thread count rnnkit ran ` +
          `best with:\n`,
      );
      console.log(
        markdownTable(
          [
            'workload',
            'rnnkit GEMM 1t GFLOP/CPU-s',
            `${info.gemm} 1t GFLOP/CPU-s`,
            'built-in 1t GFLOP/CPU-s',
            'rnnkit GEMM GFLOP/s',
            'dominant GEMM (op M×N×K: use)',
            'ideal GEMM ms/iter',
          ],
          ceilingRows,
        ),
      );
    }
    if (weightRows.some((r) => r[1] !== 'float32')) {
      console.log(
        `\nGeneration and translation by weight type (int8 kernel: ${info.int8Kernel ?? 'n/a'}), ` +
          'each beside float32 at the same batch:\n',
      );
      console.log(
        markdownTable(
          [
            'workload',
            'weights',
            'tokens/s',
            '÷ float32',
            'onnxruntime tokens/s (same weights)',
            'rnnkit ÷ onnxruntime',
            'packed weights MB',
            'peak RSS MB',
          ],
          weightRows,
        ),
      );
    }
    if (notices.length) console.log(`\n${notices.map((n) => `- ${n}`).join('\n')}`);
    console.log(
      unsaved
        ? `\n${unsaved}`
        : `\nFull record: ${path.relative(process.cwd(), opts.json) || opts.json}`,
    );
    if (failed)
      console.error('rnnkit bench: some measurements failed; their errors are in the JSON record');
    return failed || unsaved ? 1 : 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const invoked = process.argv[1] && fs.realpathSync(process.argv[1]);
if (invoked && pathToFileURL(invoked).href === import.meta.url) {
  process.exitCode = await main();
}
