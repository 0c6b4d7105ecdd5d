// The OnnxGenerator's worker thread: it owns the onnxruntime session, whose run() blocks the
// thread that calls it, and runs each call's rows through the native token loop to the end, so the
// main thread only routes requests and tokens. Requests run one after another, in the order they arrive.
import { workerData } from 'node:worker_threads';

import type { Ragged } from '../decode/options';
import type { NativeGenerateOptions, NativeGenerateResult } from '../core/native';
import { runToEnd } from '../decode/rounds';
import type { OnnxModelInfo } from './format';
import { OnnxRounds } from './rounds';
import { serveCalls } from '../threads/protocol';

export interface OnnxGeneratorInput {
  file: string;
  /** onnxruntime intra-op threads; undefined: onnxruntime's default. */
  threads: number | undefined;
}

export interface GenerateRequest {
  prompts: Ragged;
  options: NativeGenerateOptions;
  stops: Ragged | null;
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
  const input = workerData as OnnxGeneratorInput;
  const rounds = await OnnxRounds.open(input.file, input.threads);
  return {
    info: rounds.model,
    async handle(r, progress) {
      const onTokens = r.stream
        ? (step: number, rows: Int32Array, tokens: Int32Array) =>
            progress({ type: 'tokens', id: r.id, step, rows, tokens })
        : undefined;
      const result = await runToEnd(rounds, r.prompts, r.options, r.stops, r.cancel, onTokens);
      const transfer = [result.tokens, result.lengths, result.finish].map(
        (a) => a.buffer as ArrayBuffer,
      );
      return { result, transfer };
    },
  };
});
