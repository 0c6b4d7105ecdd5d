// Rounds of the native token loop (native.TokenLoop): a backend advances the loop's planned rows
// through its model and the loop samples, stops and finishes them, so every backend (the packed
// native stack here, an onnxruntime session in lib/onnx/rounds.ts) generates exactly as lmGenerate
// does. The serving engine runs rounds while rows come and go; runToEnd runs one call's rows.
import {
  native,
  type LmWeights,
  type NativeGenerateOptions,
  type NativeGenerateResult,
  type NativeTokenLoop,
  type TokenLoopStep,
} from '../core/native';
import { NetworkScorer, type TokenScorer, type TokenScores } from './logprobs';
import type { Ragged } from './options';
import type { OnTokens } from './token-loop';

/** How much of its prompt a row reads in a round (NativeTokenLoop.plan). */
export interface Schedule {
  /** Prompt tokens a priming row reads at most while no row generates. */
  chunk: number;
  /** ... and while some row generates (each token past the first stalls those rows a step). */
  sharedChunk: number;
  /** Prompt tokens the rows of one group read at most, all together. */
  budget: number;
}

/** A token loop and the model that advances it, which also scores whole sequences. */
export interface RoundBackend extends TokenScorer {
  readonly loop: NativeTokenLoop;
  /**
   * One round: loop.plan, the model over the planned rows (their state in the loop advancing),
   * then loop.sample with the logits of the rows that want them.
   */
  round(schedule: Schedule): Promise<TokenLoopStep>;
}

const ALL = 2 ** 31 - 1;
/** Every prompt whole in the first round. */
export const WHOLE_PROMPTS: Schedule = { chunk: ALL, sharedChunk: ALL, budget: ALL };

/** The packed native stack: a whole round is one native call. */
export class NativeRounds implements RoundBackend {
  readonly loop: NativeTokenLoop;
  private scorer: NetworkScorer | null = null;

  constructor(private readonly weights: LmWeights) {
    this.loop = new native.TokenLoop(weights);
  }

  round(s: Schedule): Promise<TokenLoopStep> {
    return Promise.resolve(this.loop.run(s.chunk, s.sharedChunk, s.budget));
  }

  /** The network over the loop's weights, built at the first call. */
  score(tokens: Int32Array, k: number): Promise<TokenScores> {
    this.scorer ??= new NetworkScorer(this.weights);
    return this.scorer.score(tokens, k);
  }
}

/**
 * Generates up to options.maxTokens tokens after each prompt with lmGenerate's contract (see
 * native/core/generate.h): the rows are added to the backend's (empty) loop as ids 0..B-1, whole
 * prompts are fed in the first round, and the cancel flag is read once per round.
 */
export async function runToEnd(
  backend: RoundBackend,
  prompts: Ragged,
  options: NativeGenerateOptions,
  stops: Ragged | null,
  cancel: Int32Array,
  onTokens?: OnTokens,
): Promise<NativeGenerateResult> {
  const { loop } = backend;
  const B = prompts.offsets.length - 1;
  const M = options.maxTokens;
  const tokens = new Int32Array(B * M).fill(-1);
  const lengths = new Int32Array(B);
  const finish = new Int32Array(B);
  const generated = new Int32Array(B);
  loop.add(
    Int32Array.from({ length: B }, (_, b) => b),
    prompts,
    options,
    stops,
    0,
  );
  try {
    for (let step = 0; loop.size > 0;) {
      if (Atomics.load(cancel, 0) !== 0) loop.cancel(loop.ids());
      const s = await backend.round(WHOLE_PROMPTS);
      s.rows.forEach((b, i) => (tokens[b * M + generated[b]++] = s.tokens[i]));
      if (s.rows.length > 0) onTokens?.(step++, s.rows, s.tokens);
      s.done.forEach((b, i) => {
        lengths[b] = s.lengths[i];
        finish[b] = s.finish[i];
        tokens.fill(-1, b * M + s.lengths[i], (b + 1) * M);
      });
    }
  } finally {
    clearLoop(loop);
  }
  return { tokens, lengths, finish };
}

/** Ends and removes every row of `loop` (after a failed round, say); returns their ids. */
export function clearLoop(loop: NativeTokenLoop): Int32Array {
  const ids = loop.ids();
  if (ids.length === 0) return ids;
  loop.cancel(ids);
  // Ended rows read nothing, so the plan is empty and the sample only retires them.
  loop.plan(1, 1, 1);
  loop.sample(new Float32Array(0));
  return ids;
}
