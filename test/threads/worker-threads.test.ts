// The addon is loaded once per thread: it must load and compute in the main thread and in several
// worker_threads at the same time, giving every thread the very same (bit-for-bit) results.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import * as rnnkit from '../../lib/index';
import { addonChoice, native } from '../../lib/core/native';

const ROOT = path.resolve(__dirname, '..', '..');

// Sizes large enough for the GEMMs to be real work (and to use BLAS threads).
const SIZES = { I: 48, H: 96, L: 2, T: 24, B: 16, REPEAT: 12 };

/**
 * The computation every thread runs, as source so that workers can eval it. An LSTM forward is
 * repeated REPEAT times (each must equal the first) and hashed bit by bit (FNV-1a over the float32
 * bits), so any difference at all shows: through the LSTM class (lstmPackage) or straight through the
 * addon with the same weights (lstmRaw). gruAsync runs a GRU through stackForwardAsync.
 */
const COMPUTE = String.raw`
function hashOf(arrays) {
  let hash = 0x811c9dc5;
  for (const a of arrays) {
    const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
    for (let i = 0; i < bits.length; i++) hash = Math.imul(hash ^ bits[i], 16777619) >>> 0;
  }
  return hash;
}
function input(n, step) {
  const x = new Float32Array(n);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * step);
  return x;
}
function repeat(S, run) {
  let first = null;
  for (let r = 0; r < S.REPEAT; r++) {
    const arrays = run();
    const hash = hashOf(arrays);
    if (first === null) {
      let sum = 0;
      for (const v of arrays[0]) sum += v;
      first = { hash, sum, sample: Array.from(arrays[0].subarray(0, 4)) };
    } else if (hash !== first.hash) {
      throw new Error('repeat ' + r + ' gave other results than the first');
    }
  }
  return first;
}
function lstmPackage(rnnkit, S) {
  const lstm = new rnnkit.LSTM({ inputSize: S.I, hiddenSize: S.H, numLayers: S.L, seed: 42 });
  const x = input(S.T * S.B * S.I, 0.37);
  return repeat(S, () => {
    const { output, state } = lstm.forward(x, { steps: S.T, batch: S.B });
    return [output, state.h, state.c];
  });
}
function lstmRaw(native, params, S) {
  const shape = { cell: 'lstm', T: S.T, B: S.B, I: S.I, H: S.H, L: S.L, dropout: 0, residual: false, training: false, seed: 0 };
  const x = input(S.T * S.B * S.I, 0.37);
  const y = new Float32Array(S.T * S.B * S.H);
  const hT = new Float32Array(S.L * S.B * S.H);
  const cT = new Float32Array(S.L * S.B * S.H);
  const ws = new Float32Array(native.stackWorkspaceSize(shape));
  return repeat(S, () => {
    native.stackForward({ shape, params, x, lengths: null, h0: null, c0: null, y, hT, cT, ws });
    return [y, hT, cT];
  });
}
async function gruAsync(native, S) {
  const shape = { cell: 'gru', T: S.T, B: S.B, I: S.I, H: S.H, L: S.L, dropout: 0, residual: false, training: false, seed: 0 };
  const params = new Float32Array(native.stackParamCount(shape));
  for (let i = 0; i < params.length; i++) params[i] = Math.cos(i) * 0.1;
  const x = input(S.T * S.B * S.I, 0.11);
  const y = new Float32Array(S.T * S.B * S.H);
  const hT = new Float32Array(S.L * S.B * S.H);
  const ws = new Float32Array(native.stackWorkspaceSize(shape));
  await native.stackForwardAsync({ shape, params, x, lengths: null, h0: null, c0: null, y, hT, cT: null, ws });
  return hashOf([y, hT]);
}
`;

type Result = { hash: number; sum: number; sample: number[] };
type Sizes = typeof SIZES;

const fns = new Function(`${COMPUTE}; return { lstmPackage, lstmRaw, gruAsync };`)() as {
  lstmPackage: (rnnkit: unknown, sizes: Sizes) => Result;
  lstmRaw: (native: unknown, params: Float32Array, sizes: Sizes) => Result;
  gruAsync: (native: unknown, sizes: Sizes) => Promise<number>;
};

const WORKER = String.raw`
  const { parentPort, workerData } = require('node:worker_threads');
  ${COMPUTE}
  (async () => {
    try {
      const { root, addonFile, sizes, gate, via, params } = workerData;
      // Load the addon through the package (its TypeScript source) or the .node file itself.
      const native = require(addonFile);
      const rnnkit = via === 'package' ? require(root + '/lib/index.ts') : null;
      parentPort.postMessage({ loaded: true });
      Atomics.wait(gate, 0, 0); // everyone starts computing at once
      const lstm = rnnkit ? lstmPackage(rnnkit, sizes) : lstmRaw(native, params, sizes);
      const gru = await gruAsync(native, sizes);
      parentPort.postMessage({ lstm, gru });
    } catch (error) {
      parentPort.postMessage({ error: String((error && error.stack) || error) });
    }
  })();
`;

type WorkerResult = { lstm: Result; gru: number; exitCode: number };

/** A worker that loads the addon (`loaded` settles then) and computes once `gate` opens. */
function spawn(
  via: 'package' | 'addon',
  gate: Int32Array,
  params: Float32Array,
): { loaded: Promise<void>; done: Promise<WorkerResult> } {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { root: ROOT, addonFile: addonChoice.file, sizes: SIZES, gate, via, params },
  });
  let message: { lstm: Result; gru: number; error?: string } | null = null;
  const loaded = new Promise<void>((resolve) =>
    worker.on('message', (m) => (m.loaded ? resolve() : (message = m))),
  );
  const done = new Promise<WorkerResult>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', (exitCode) => {
      if (!message) return reject(new Error(`worker exited (${exitCode}) without a result`));
      if (message.error) return reject(new Error(`worker failed: ${message.error}`));
      resolve({ lstm: message.lstm, gru: message.gru, exitCode });
    });
  });
  return { loaded: Promise.race([loaded, done.then(() => undefined)]), done };
}

const lstmParams = () =>
  new rnnkit.LSTM({ inputSize: SIZES.I, hiddenSize: SIZES.H, numLayers: SIZES.L, seed: 42 }).weights
    .data;

describe('the addon in worker threads', () => {
  it('three workers and the main thread compute the same LSTM forward at once', async () => {
    const main = fns.lstmPackage(rnnkit, SIZES);
    expect(main.sum).not.toBe(0);
    expect(Number.isFinite(main.sum)).toBe(true);
    // The class and the raw addon call are the same computation.
    expect(fns.lstmRaw(native, lstmParams(), SIZES)).toEqual(main);
    const mainGru = await fns.gruAsync(native, SIZES);

    const gate = new Int32Array(new SharedArrayBuffer(4));
    const params = lstmParams();
    // The workers load one after another (the package's TypeScript compiles as it loads, one
    // thread at a time), wait at the gate, and are released together while the main thread
    // computes too.
    const workers: Promise<WorkerResult>[] = [];
    for (const via of ['package', 'package', 'addon'] as const) {
      const w = spawn(via, gate, params);
      await w.loaded;
      workers.push(w.done);
    }
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const during = fns.lstmPackage(rnnkit, SIZES);
    const results = await Promise.all(workers);

    expect(during).toEqual(main);
    expect(results.length).toBe(3);
    results.forEach((r, k) => {
      expect(r.exitCode, `worker ${k} exit code`).toBe(0);
      expect(r.lstm, `worker ${k} LSTM checksum`).toEqual(main);
      expect(r.gru, `worker ${k} async GRU checksum`).toBe(mainGru);
    });
  });

  it('a worker started after others exited still loads the addon, and the main thread still computes', async () => {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(gate, 0, 1);
    const first = await spawn('package', gate, lstmParams()).done;
    const second = await spawn('addon', gate, lstmParams()).done;
    expect(second).toEqual(first);
    expect(fns.lstmPackage(rnnkit, SIZES)).toEqual(first.lstm);
    expect(rnnkit.info()).toEqual({
      version: expect.any(String),
      ...native.info(),
      addon: addonChoice.file,
      addonSource: addonChoice.source,
      cpu: addonChoice.cpu,
    });
  });
});
