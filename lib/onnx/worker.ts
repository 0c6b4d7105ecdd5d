// The OnnxGenerator's worker thread: it owns the onnxruntime session, whose run() blocks the
// thread that calls it, and runs whole generation loops, so the main thread only routes requests
// and tokens. Requests run one after another, in the order they arrive.
import { workerData } from 'node:worker_threads';

import type { Ragged } from '../decode/options';
import type { NativeGenerateOptions, NativeGenerateResult } from '../core/native';
import type { OnnxModelInfo } from './format';
import { OnnxTokenLoop } from './loop';
import { openOnnxSession } from './session';
import { serveCalls } from '../threads/protocol';

export interface WorkerInput {
  file: string;
  /** onnxruntime intra-op threads; undefined: onnxruntime's default. */
  threads: number | undefined;
}

export interface GenerateRequest {
  prompts: Ragged;
  options: NativeGenerateOptions;
  stops: Ragged | null;
  /** Int32Array(1) over shared memory: non-zero cancels at the next step. */
  cancel: Int32Array;
  /** Post the tokens of every step as they are sampled. */
  stream: boolean;
}

/** The tokens of one step of a streamed call: rows[i] sampled tokens[i]. */
export interface TokensReply {
  type: 'tokens';
  id: number;
  step: number;
  rows: Int32Array;
  tokens: Int32Array;
}

void serveCalls<OnnxModelInfo, GenerateRequest, NativeGenerateResult, TokensReply>(async () => {
  const input = workerData as WorkerInput;
  const { session, info } = await openOnnxSession(input.file, input.threads);
  const loop = new OnnxTokenLoop(session, info.spec, info.kind);
  return {
    info,
    async handle(r, progress) {
      const onTokens = r.stream
        ? (step: number, rows: Int32Array, tokens: Int32Array) =>
            progress({ type: 'tokens', id: r.id, step, rows, tokens })
        : undefined;
      const result = await loop.generate(r.prompts, r.options, r.stops, r.cancel, onTokens);
      const transfer = [result.tokens, result.lengths, result.finish].map(
        (a) => a.buffer as ArrayBuffer,
      );
      return { result, transfer };
    },
  };
});
