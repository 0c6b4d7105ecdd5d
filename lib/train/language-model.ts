// A language model's training task: truncated backpropagation through time over parallel streams
// of the corpus, with state resets and a position (every random stream and the carried state)
// that checkpoints save; and its evaluation over every next-token prediction of a text.
import { saveCheckpoint } from '../checkpoint/language-model';
import type { ResumeState } from '../checkpoint/resume';
import type { Precision } from '../core/native';
import { Random } from '../core/random';
import { copyState, type LanguageModelNetwork } from '../models/language-model';
import type { RecurrentState } from '../nn/recurrent';
import { IGNORE_INDEX } from '../text/batch';
import {
  runTraining,
  type BaseLoopOptions,
  type LoopMessage,
  type LoopResult,
  type TrainingTask,
} from './loop';

/** A language model's training options. */
export interface LoopOptions extends BaseLoopOptions {
  seqLength: number;
  /**
   * Probability that a window starts from a zero state instead of the state carried from the one
   * before: without it a model trained on carried state rarely sees a cold start, and prompts
   * given to it from a zero state can derail it.
   */
  stateResetRate: number;
  /** The matrix products' precision in the training steps (validation runs in float32). */
  precision: Precision;
}

/** Cuts a token stream into `batch` parallel streams read `steps` tokens at a time. */
export class StreamBatcher {
  readonly streamLength: number;
  readonly chunks: number;

  constructor(
    readonly tokens: Int32Array,
    readonly batch: number,
    readonly steps: number,
    what: string,
  ) {
    this.streamLength = Math.floor((tokens.length - 1) / batch);
    this.chunks = Math.floor(this.streamLength / steps);
    if (this.chunks < 1) {
      throw new RangeError(
        `${what} has ${tokens.length} tokens, too few for one training window of ` +
          `batchSize*seqLength+1 = ${batch}*${steps}+1 = ${batch * steps + 1}; use a longer text or smaller batchSize/seqLength`,
      );
    }
  }

  /** Inputs and next-token targets of chunk j, time-major [steps, batch]. */
  chunk(j: number, inputs: Int32Array, targets: Int32Array): void {
    const { batch, steps, streamLength, tokens } = this;
    for (let b = 0; b < batch; b++) {
      const start = b * streamLength + j * steps;
      for (let t = 0; t < steps; t++) {
        inputs[t * batch + b] = tokens[start + t];
        targets[t * batch + b] = tokens[start + t + 1];
      }
    }
  }
}

/**
 * Mean cross-entropy (nats per token) of every next-token prediction of a token stream, and their
 * count (tokens.length - 1). The predictions are cut into up to `batch` contiguous rows whose
 * lengths differ by at most one, read `steps` at a time with the state carried; a row's last
 * window is padded with ignored targets, so no prediction is dropped or counted twice.
 */
export function evaluateTokens(
  model: LanguageModelNetwork,
  tokens: Int32Array,
  batch: number,
  steps: number,
): { loss: number; count: number } {
  const predictions = tokens.length - 1;
  if (predictions < 1) {
    throw new RangeError(`the evaluation text has ${tokens.length} tokens; it needs at least two`);
  }
  const rows = Math.min(batch, predictions);
  const base = Math.floor(predictions / rows);
  const longer = predictions % rows;
  const start = (b: number) => b * base + Math.min(b, longer);
  const length = (b: number) => base + (b < longer ? 1 : 0);
  const chunks = Math.ceil(length(0) / steps);
  const inputs = new Int32Array(rows * steps);
  const targets = new Int32Array(rows * steps);
  let state: RecurrentState | undefined;
  let sum = 0;
  let count = 0;
  for (let j = 0; j < chunks; j++) {
    for (let b = 0; b < rows; b++) {
      for (let t = 0; t < steps; t++) {
        const p = j * steps + t;
        const i = t * rows + b;
        const inside = p < length(b);
        inputs[i] = inside ? tokens[start(b) + p] : 0;
        targets[i] = inside ? tokens[start(b) + p + 1] : IGNORE_INDEX;
      }
    }
    const r = model.lossSum(inputs, targets, steps, rows, state);
    sum += r.sum;
    count += r.count;
    state = copyState(r.state);
  }
  return { loss: sum / count, count };
}

/**
 * Where a language-model run stands, saved with its checkpoints: the next window, every random
 * stream (state resets, dropout masks) and the recurrent state carried into the next window.
 */
type LmPosition = {
  chunk: number;
  resets: string;
  dropoutSeeds: number[];
  carry: { h: number[]; c: number[] | null } | null;
};

/** The saved position of `resume`, checked against this run's model and batch size. */
function lmPosition(resume: ResumeState, model: LanguageModelNetwork, batch: number) {
  const p = resume.training.progress as Partial<LmPosition>;
  if (
    !Number.isInteger(p.chunk) ||
    typeof p.resets !== 'string' ||
    !Array.isArray(p.dropoutSeeds) ||
    p.carry === undefined
  ) {
    throw new Error(
      'cannot resume: the training state is not a language-model one with its random streams',
    );
  }
  const size = model.spec.numLayers * batch * model.spec.hiddenSize;
  const { carry } = p;
  if (carry && (carry.h.length !== size || (carry.c !== null && carry.c.length !== size))) {
    throw new Error(
      `cannot resume: the checkpoint's recurrent state has ${carry.h.length} values, ` +
        `this run's has ${size} (a different batch size?)`,
    );
  }
  const state: RecurrentState | undefined = carry
    ? carry.c
      ? { h: Float32Array.from(carry.h), c: Float32Array.from(carry.c) }
      : { h: Float32Array.from(carry.h) }
    : undefined;
  return {
    chunk: p.chunk as number,
    resets: Random.resume(p.resets),
    dropoutSeeds: p.dropoutSeeds,
    state,
  };
}

/**
 * Trains a language model on `train` tokens (validating on `validation` when non-empty).
 * `resume` carries the state of an earlier run (from a checkpoint) to continue where it stopped.
 */
export function trainLoop(
  model: LanguageModelNetwork,
  train: Int32Array,
  validation: Int32Array,
  o: LoopOptions,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
  resume?: ResumeState,
): Promise<LoopResult> {
  const B = o.batchSize;
  const T = o.seqLength;
  const batcher = new StreamBatcher(train, B, T, 'the training text');
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const saved = resume ? lmPosition(resume, model, B) : null;
  let chunk = saved?.chunk ?? 0;
  let state = saved?.state;
  const resets = saved?.resets ?? new Random(o.seed);
  if (saved) model.dropoutSeeds = saved.dropoutSeeds;
  const task: TrainingTask = {
    stepsPerEpoch: batcher.chunks,
    trainStep() {
      if (chunk >= batcher.chunks) {
        chunk = 0;
        state = undefined;
      }
      if (o.stateResetRate > 0 && resets.uniform() < o.stateResetRate) state = undefined;
      batcher.chunk(chunk, inputs, targets);
      const r = model.lossAndGradients(inputs, targets, T, B, state, o.precision);
      state = copyState(r.state);
      chunk++;
      return { loss: r.loss, tokens: B * T };
    },
    validate: () =>
      validation.length > 0
        ? evaluateTokens(model, validation, Math.min(B, evalBatch(validation, T)), T).loss
        : null,
    position: (): LmPosition => ({
      chunk,
      resets: resets.save(),
      dropoutSeeds: model.dropoutSeeds,
      carry: state ? { h: Array.from(state.h), c: state.c ? Array.from(state.c) : null } : null,
    }),
    save: (path, r) => saveCheckpoint(model, path, r),
  };
  return runTraining(model, task, o, report, shouldStop, resume);
}

/** The largest batch (up to 64) that leaves at least one window of `steps` in `tokens`. */
export function evalBatch(tokens: Int32Array, steps: number): number {
  return Math.max(1, Math.min(64, Math.floor((tokens.length - 1) / steps)));
}
