// The generate workload on onnxruntime-node, in its own process: a one-step language model in ONNX
// (tokens [1, B] int64 and the recurrent state in; logits [1, B, V] and the new state out) driven
// by a JavaScript loop that samples every row from softmax(logits / temperature) and carries the
// state, the loop an ONNX-serving Node application writes. Started by bench/run.mjs as
// `node bench/ort_worker.mjs '<task JSON>'`.
import { createRequire } from 'node:module';
import { Unavailable, peakRssMB, rng, runWorker, timeIterations } from './common.mjs';

const require = createRequire(import.meta.url);

/**
 * onnxruntime-node, or Unavailable. Resolved with require from this folder (so NODE_PATH works
 * too): onnxruntime-node is a CommonJS package.
 */
function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (error) {
    if (error?.code === 'MODULE_NOT_FOUND') throw new Unavailable('onnxruntime-node not installed');
    throw error;
  }
}

await runWorker(async (task) => {
  const ort = loadOrt();
  const baselineRssMB = peakRssMB();
  const w = task.workload;
  const session = await ort.InferenceSession.create(task.model, {
    intraOpNumThreads: task.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Idle intra-op threads sleep instead of spinning: the counterpart of PyTorch's
    // OMP_WAIT_POLICY=PASSIVE, and what rnnkit's own sessions do (lib/onnx/session.ts).
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  // Inputs and outputs by position: tokens, then the states (h, and c for LSTM), in that order.
  const [tokensName, ...stateNames] = session.inputNames;
  const [logitsName, ...newStateNames] = session.outputNames;
  if (stateNames.length !== newStateNames.length) {
    throw new Error(`the step model has states [${stateNames}] in but [${newStateNames}] out`);
  }
  const stateDims = [w.L, w.B, w.H];
  const stateSize = w.L * w.B * w.H;
  const next = rng(task.seed ?? 1234);
  const probs = new Float64Array(w.V);

  /** Samples each row of logits [B, V] at temperature 1 into `out` (int64). */
  function sample(logits, out) {
    for (let b = 0; b < w.B; b++) {
      const row = b * w.V;
      let max = -Infinity;
      for (let v = 0; v < w.V; v++) if (logits[row + v] > max) max = logits[row + v];
      let sum = 0;
      for (let v = 0; v < w.V; v++) sum += probs[v] = Math.exp(logits[row + v] - max);
      let u = next() * sum;
      let pickId = w.V - 1;
      for (let v = 0; v < w.V; v++) {
        u -= probs[v];
        if (u < 0) {
          pickId = v;
          break;
        }
      }
      out[b] = BigInt(pickId);
    }
  }

  let produced = 0;
  const r = await timeIterations(async () => {
    let tokens = new BigInt64Array(w.B).map((_, b) => BigInt((7 * b) % (w.V - 1)));
    let states = stateNames.map(() => new Float32Array(stateSize));
    produced = 0;
    for (let step = 0; step < w.steps; step++) {
      const feeds = { [tokensName]: new ort.Tensor('int64', tokens, [1, w.B]) };
      stateNames.forEach((n, i) => (feeds[n] = new ort.Tensor('float32', states[i], stateDims)));
      const out = await session.run(feeds);
      tokens = new BigInt64Array(w.B);
      sample(out[logitsName].data, tokens);
      states = newStateNames.map((n) => out[n].data);
      produced += w.B;
    }
  }, task);
  if (produced !== w.B * w.steps) throw new Error(`produced ${produced} tokens`);
  return {
    ...r,
    msPerStep: r.msPerIteration / w.steps,
    baselineRssMB,
    ortInputs: session.inputNames,
  };
});
