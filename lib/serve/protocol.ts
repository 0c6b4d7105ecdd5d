// Messages between a BatchingGenerator (main thread) and its engine worker.
import type { TokenScores } from '../decode/logprobs';
import type { Ragged } from '../decode/options';
import type { LanguageModelSpec } from '../models/language-model';
import type { LmWeights, NativeGenerateOptions } from '../core/native';
import type { TokenizerJSON } from '../text';
import type { FirstReply } from '../threads/start';

export type WorkerInput = (
  { kind: 'native'; spec: LanguageModelSpec; weights: LmWeights } | { kind: 'onnx'; file: string }
) & {
  /** GEMM threads (native, process-wide) or onnxruntime intra-op threads; undefined: default. */
  threads: number | undefined;
  /** Prompt tokens a priming row reads in a round at most, alone and beside generating rows. */
  primeChunk: number;
  sharedChunk: number;
  /** Prompt tokens the rows of one call read in a round at most, all together. */
  promptBudget: number;
};

/** One prompt to continue: a batch row from priming to its last token. */
export interface RowRequest {
  /** Unique per generator; every reply names rows by it. */
  id: number;
  /** The rows of one call share a group, and with it the round's prompt budget. */
  group: number;
  prompt: Int32Array;
  /** The row samples with lmGenerate's stream for row options.rowOffset of a batch. */
  options: NativeGenerateOptions;
  stops: Ragged | null;
  /** Int32Array(1) over shared memory: non-zero ends the row at the next step. */
  cancel: Int32Array;
}

/** What the engine worker loaded: the model's spec and, from an .onnx file, its vocabulary. */
export interface EngineInfo {
  spec: LanguageModelSpec;
  tokenizer: TokenizerJSON | null;
}

/** Score a whole sequence (TokenScorer.score) between two rounds. */
export interface ScoreRequest {
  /** Unique per generator; the reply names it. */
  id: number;
  tokens: Int32Array;
  k: number;
}

export type ToWorker = { type: 'add'; rows: RowRequest[] } | ({ type: 'score' } & ScoreRequest);

export type FromWorker =
  | FirstReply<EngineInfo>
  /**
   * One step: rows[i] sampled tokens[i]; then the rows `done` ended with lengths (tokens kept,
   * a matched stop sequence not counted) and finish reasons (FINISH_*: 0 length, 1 stop, 2 cancelled, 3 error).
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
  | { type: 'error'; rows: Int32Array; message: string }
  /** A score request's answer: its scores, or why it failed. */
  | { type: 'scored'; id: number; scores: TokenScores }
  | { type: 'score-failed'; id: number; message: string };
