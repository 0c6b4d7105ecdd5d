// Messages between a BatchingGenerator (main thread) and its engine worker.
import type { Ragged } from '../decode/options';
import type { LanguageModelSpec } from '../models/language-model';
import type { LmWeights, NativeSamplerOptions } from '../core/native';
import type { TokenizerJSON } from '../text';
import type { FirstReply } from '../threads/start';

export type WorkerInput = (
  { kind: 'native'; spec: LanguageModelSpec; weights: LmWeights } | { kind: 'onnx'; file: string }
) & {
  /** GEMM threads (native, process-wide) or onnxruntime intra-op threads; undefined: default. */
  threads: number | undefined;
  /** Prompt tokens per row and call while no row is generating. */
  primeChunk: number;
};

/** One prompt to continue: a batch row from priming to its last token. */
export interface RowRequest {
  /** Unique per generator; every reply names rows by it. */
  id: number;
  prompt: Int32Array;
  sampler: NativeSamplerOptions;
  maxTokens: number;
  /** The row samples with lmGenerate's stream for row `rowIndex` of a batch seeded `seed`. */
  seed: number;
  rowIndex: number;
  stops: Ragged | null;
  /** Int32Array(1) over shared memory: non-zero ends the row at the next step. */
  cancel: Int32Array;
}

/** What the engine worker loaded: the model's spec and, from an .onnx file, its vocabulary. */
export interface EngineInfo {
  spec: LanguageModelSpec;
  tokenizer: TokenizerJSON | null;
}

export type ToWorker = { type: 'add'; rows: RowRequest[] };

export type FromWorker =
  | FirstReply<EngineInfo>
  /**
   * One step: rows[i] sampled tokens[i]; then the rows `done` ended with lengths (tokens kept,
   * a matched stop sequence not counted) and finish reasons (0 length, 1 stop, 2 cancelled).
   */
  | {
      type: 'step';
      rows: Int32Array;
      tokens: Int32Array;
      done: Int32Array;
      lengths: Int32Array;
      finish: Int32Array;
    }
  /** The backend failed on these rows (and only these); they are gone from the batch. */
  | { type: 'error'; rows: Int32Array; message: string };

export const FINISH_LENGTH = 0;
export const FINISH_STOP = 1;
export const FINISH_CANCELLED = 2;
