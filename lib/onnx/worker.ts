// The OnnxGenerator's worker thread: it owns the onnxruntime session, whose run() blocks the
// thread that calls it, and runs whole generation loops, so the main thread only routes requests
// and tokens. Requests run one after another, in the order they arrive.
import { parentPort, workerData } from 'node:worker_threads';

import type { Ragged } from '../generate/options';
import type { NativeGenerateOptions, NativeGenerateResult } from '../native';
import type { OnnxModelInfo } from './format';
import { OnnxTokenLoop } from './loop';
import { openOnnxSession, type OnnxSession } from './session';

export interface WorkerInput {
  file: string;
  /** onnxruntime intra-op threads; undefined: onnxruntime's default. */
  threads: number | undefined;
}

export interface GenerateRequest {
  id: number;
  prompts: Ragged;
  options: NativeGenerateOptions;
  stops: Ragged | null;
  /** Int32Array(1) over shared memory: non-zero cancels at the next step. */
  cancel: Int32Array;
  /** Post the tokens of every step as they are sampled. */
  stream: boolean;
}

export type WorkerReply =
  | { type: 'ready'; info: OnnxModelInfo }
  | { type: 'failed'; message: string }
  | { type: 'tokens'; id: number; step: number; rows: Int32Array; tokens: Int32Array }
  | { type: 'done'; id: number; result: NativeGenerateResult }
  | { type: 'error'; id: number; message: string };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the ONNX generator worker must run in a worker thread');
  const post = (reply: WorkerReply, transfer: ArrayBuffer[] = []) =>
    port.postMessage(reply, transfer);
  let opened: OnnxSession;
  try {
    const input = workerData as WorkerInput;
    opened = await openOnnxSession(input.file, input.threads);
  } catch (error) {
    post({ type: 'failed', message: (error as Error).message });
    return;
  }
  const { info } = opened;
  const loop = new OnnxTokenLoop(opened.session, info.spec, info.kind);
  let queue = Promise.resolve();
  port.on('message', (r: GenerateRequest) => {
    queue = queue.then(async () => {
      try {
        const onTokens = r.stream
          ? (step: number, rows: Int32Array, tokens: Int32Array) =>
              post({ type: 'tokens', id: r.id, step, rows, tokens })
          : undefined;
        const result = await loop.generate(r.prompts, r.options, r.stops, r.cancel, onTokens);
        post({ type: 'done', id: r.id, result }, [
          result.tokens.buffer as ArrayBuffer,
          result.lengths.buffer as ArrayBuffer,
          result.finish.buffer as ArrayBuffer,
        ]);
      } catch (error) {
        post({ type: 'error', id: r.id, message: (error as Error).message });
      }
    });
  });
  post({ type: 'ready', info });
}

void main();
