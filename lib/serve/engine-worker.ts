// The engine worker of a BatchingGenerator: it owns the round backend (native kernels or an
// onnxruntime session, both of which hold the thread they run on) and the batching loop, so the
// main thread only routes rows and tokens.
import { parentPort, workerData } from 'node:worker_threads';

import { native } from '../core/native';
import { NativeRounds, type RoundBackend } from '../decode/rounds';
import { StepEngine } from './engine';
import type { FromWorker, ToWorker, WorkerInput } from './protocol';

async function open(input: WorkerInput): Promise<{ backend: RoundBackend; ready: FromWorker }> {
  if (input.kind === 'native') {
    if (input.threads !== undefined) native.setThreads(input.threads);
    return {
      backend: new NativeRounds(input.weights),
      ready: { type: 'ready', info: { spec: input.spec, tokenizer: null } },
    };
  }
  // Loaded only for ONNX models, so a native server never starts onnxruntime.
  const { OnnxRounds } = require('../onnx/rounds') as typeof import('../onnx/rounds');
  const backend = await OnnxRounds.open(input.file, input.threads);
  return {
    backend,
    ready: {
      type: 'ready',
      info: { spec: backend.model.spec, tokenizer: backend.model.tokenizer },
    },
  };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the batching engine must run in a worker thread');
  const input = workerData as WorkerInput;
  const post = (m: FromWorker) => port.postMessage(m);
  let opened: Awaited<ReturnType<typeof open>>;
  try {
    opened = await open(input);
  } catch (error) {
    post({ type: 'failed', message: (error as Error).message });
    return;
  }
  const engine = new StepEngine(opened.backend, post, {
    chunk: input.primeChunk,
    sharedChunk: input.sharedChunk,
    budget: input.promptBudget,
  });
  port.on('message', (m: ToWorker) => (m.type === 'add' ? engine.add(m.rows) : engine.score(m)));
  post(opened.ready);
}

void main();
