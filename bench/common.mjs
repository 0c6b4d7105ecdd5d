// Helpers shared by the benchmark's Node processes: the timing protocol (also implemented, line for
// line, by bench/torch_ref.py), peak-memory readings and the worker <-> orchestrator protocol.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

/** Median of a non-empty list of numbers. */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The timing protocol. `fn` is one iteration (sync or async). One untimed warm-up iteration
 * measures its cost, which fixes `inner`, the iterations per timed repetition, so that every
 * repetition lasts at least `minRepMs` (timer resolution and scheduler noise then stay small for
 * the fast workloads); one more untimed repetition of `inner` iterations follows (buffers sized,
 * caches and thread pools warm). Then `reps` timed repetitions; each yields ms per iteration, and
 * the median is the figure reported.
 */
export async function timeIterations(fn, { reps, minRepMs }) {
  let t = performance.now();
  await fn();
  const firstMs = performance.now() - t;
  const inner = Math.max(1, Math.ceil(minRepMs / Math.max(firstMs, 1e-3)));
  for (let i = 0; i < inner; i++) await fn();
  const samples = [];
  const cpuSamples = [];
  for (let r = 0; r < reps; r++) {
    const cpu = process.cpuUsage();
    t = performance.now();
    for (let i = 0; i < inner; i++) await fn();
    samples.push((performance.now() - t) / inner);
    const { user, system } = process.cpuUsage(cpu);
    cpuSamples.push((user + system) / 1000 / inner);
  }
  return {
    msPerIteration: median(samples),
    samplesMs: samples,
    // Process CPU time (all threads, spinning included): at one thread on a loaded machine it is
    // the steadier figure, since time spent preempted does not count.
    cpuMsPerIteration: median(cpuSamples),
    inner,
    warmupMs: firstMs,
  };
}

/** Peak resident set size of this process so far, in MB. */
export function peakRssMB() {
  return process.resourceUsage().maxRSS / 1024;
}

/** Deterministic pseudo-random generator (mulberry32): uniform floats in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n token ids uniform in [0, V). */
export function randomTokens(n, V, seed) {
  const next = rng(seed);
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = Math.floor(next() * V);
  return ids;
}

/** n floats uniform in [-1, 1). */
export function randomFloats(n, seed) {
  const next = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * next() - 1;
  return a;
}

/**
 * Worker entry: reads the task (JSON in argv[2]), runs `body(task)`, and writes its result with
 * the process's peak RSS to the file named by task.out. A thrown error becomes
 * { status: 'error' }; `Unavailable` marks something that is not there (yet). A task with a
 * `tasks` list runs each in turn in this one process and writes the list of results (--quick
 * does this to save process start-ups; peak RSS is then cumulative and means little).
 */
export async function runWorker(body) {
  const task = JSON.parse(process.argv[2]);
  const results = [];
  for (const t of task.tasks ?? [task]) {
    let result;
    try {
      result = { status: 'ok', ...(await body(t)) };
    } catch (error) {
      result =
        error instanceof Unavailable
          ? { status: 'unavailable', reason: error.message }
          : { status: 'error', reason: error?.stack ?? String(error) };
    }
    result.peakRssMB = peakRssMB();
    results.push(result);
  }
  fs.writeFileSync(task.out, JSON.stringify(task.tasks ? results : results[0]));
}

/** Something a workload needs is not installed or not implemented yet: reported, not failed. */
export class Unavailable extends Error {}

/**
 * A script's options (node:util parseArgs): prints `usage` and exits 0 on --help / -h, and exits 2
 * with the problem and `usage` on an unknown option, a missing value or a count that is not a
 * positive integer. `counts` names the string options that hold one; they come back as numbers.
 */
export function commandLine(usage, options, { positionals = false, counts = [] } = {}) {
  const fail = (message) => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: positionals,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    fail(error.message);
  }
  if (parsed.values.help) {
    console.log(usage);
    process.exit(0);
  }
  const values = { ...parsed.values };
  for (const name of counts) {
    if (values[name] === undefined) continue;
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1)
      fail(`--${name} must be a positive integer, got '${values[name]}'`);
    values[name] = n;
  }
  return { values, positionals: parsed.positionals };
}
