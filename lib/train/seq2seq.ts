// The training loop of a sequence-to-sequence model: teacher forcing (optionally with parallel
// scheduled sampling) over length-bucketed padded batches, label smoothing, and the language
// model's optimizers, schedules, clipping, validation, early stopping and resumable checkpoints
// (runTraining in lib/train/loop.ts). It runs in a worker thread (see fit.ts) and talks to its
// caller only through `report` and `shouldStop`.
import type { ResumeState } from '../checkpoint/resume';
import type { Seq2Seq } from '../models/seq2seq';
import { Random } from '../core/random';
import {
  runTraining,
  type BaseLoopOptions,
  type LoopMessage,
  type LoopResult,
  type TrainingTask,
} from './loop';
import { saveSeq2Seq } from '../checkpoint/seq2seq';
import { pairBatch, type PairBatch } from '../text/batch';

/** A tokenized training pair. */
export interface TokenPair {
  source: Int32Array;
  target: Int32Array;
}

/** Options of a training run that can cross a thread boundary (no functions). */
export interface Seq2SeqLoopOptions extends BaseLoopOptions {
  labelSmoothing: number;
  /** Probability that a decoder input is the model's own prediction (parallel scheduled sampling). */
  scheduledSampling: number;
  /** Steps over which that probability rises linearly from 0 (0: from the first step). */
  scheduledSamplingRamp: number;
}

/**
 * Batches of similar source length: each epoch shuffles the pairs, sorts pools of 50 batches by
 * source length, cuts them into batches and shuffles the batch order, so padding stays small
 * while every epoch still sees new batch compositions.
 */
export function bucketBatches(
  pairs: readonly TokenPair[],
  batchSize: number,
  rng: Random,
): TokenPair[][] {
  const order = pairs.map((_, i) => i);
  shuffle(order, rng);
  const pool = batchSize * 50;
  const batches: TokenPair[][] = [];
  for (let at = 0; at < order.length; at += pool) {
    const slice = order
      .slice(at, at + pool)
      .sort((a, b) => pairs[a].source.length - pairs[b].source.length);
    for (let i = 0; i < slice.length; i += batchSize) {
      batches.push(slice.slice(i, i + batchSize).map((k) => pairs[k]));
    }
  }
  return shuffle(batches, rng);
}

function shuffle<T>(a: T[], rng: Random): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export function toPairBatch(model: Seq2Seq, pairs: readonly TokenPair[]): PairBatch {
  return pairBatch(
    pairs.map((p) => p.source),
    pairs.map((p) => p.target),
    model.spec.bos,
    model.spec.eos,
  );
}

/** Mean cross-entropy per target token (eos included) over `pairs`, without gradients. */
export function evaluatePairs(model: Seq2Seq, pairs: readonly TokenPair[], batchSize = 64): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < pairs.length; i += batchSize) {
    const r = model.lossSum(toPairBatch(model, pairs.slice(i, i + batchSize)));
    sum += r.sum;
    count += r.count;
  }
  return count > 0 ? sum / count : NaN;
}

/** The scheduled-sampling probability at `step` (0-based): the rate, ramped over the first steps. */
export function samplingRate(
  o: Pick<Seq2SeqLoopOptions, 'scheduledSampling' | 'scheduledSamplingRamp'>,
  step: number,
): number {
  const ramp = o.scheduledSamplingRamp;
  return ramp > 0 ? o.scheduledSampling * Math.min(1, step / ramp) : o.scheduledSampling;
}

/**
 * The decoder inputs of parallel scheduled sampling (Duckworth et al. 2019): every input after
 * the first (bos) within a row's length is, with probability `p`, replaced by `predictions` [T, B]
 * of the step before it, the model's guess of that same token. With `p` = 0 the batch's own
 * inputs come back and `rng` is not drawn from.
 */
export function mixDecoderInputs(
  batch: PairBatch,
  predictions: Int32Array,
  p: number,
  rng: Random,
): Int32Array {
  if (p === 0) return batch.targetIn;
  const { batch: B, targetLengths } = batch;
  const mixed = batch.targetIn.slice();
  for (let b = 0; b < B; b++) {
    for (let t = 1; t < targetLengths[b]; t++) {
      if (rng.uniform() < p) mixed[t * B + b] = predictions[(t - 1) * B + b];
    }
  }
  return mixed;
}

/** Where a seq2seq run stands, saved in its checkpoints. */
type Position = {
  pairs: number;
  batchSize: number;
  /** The batch-order stream before it shuffled the current epoch's batches. */
  epochRandom: string;
  /** Batches of the current epoch already trained on. */
  batchesRun: number;
  samplingRandom: string;
  dropoutSeeds: number[];
};

/** The saved position of `resume`, checked against this run. */
function savedPosition(resume: ResumeState, pairs: number, batchSize: number): Position {
  const p = resume.training.progress as Partial<Position>;
  if (
    typeof p.epochRandom !== 'string' ||
    typeof p.samplingRandom !== 'string' ||
    !Number.isInteger(p.batchesRun) ||
    !Array.isArray(p.dropoutSeeds)
  ) {
    throw new Error(
      'cannot resume: the training state is not a sequence-to-sequence one (it has no batch position)',
    );
  }
  if (p.pairs !== pairs || p.batchSize !== batchSize) {
    throw new Error(
      `cannot resume: the checkpoint trained on ${p.pairs} pairs in batches of ${p.batchSize}, ` +
        `this run has ${pairs} pairs in batches of ${batchSize}`,
    );
  }
  return p as Position;
}

/**
 * Trains `model` on `train`, validating on `validation` when non-empty. `resume` (a checkpoint's
 * state) continues an earlier run exactly where it stopped: the same batches, sampling draws and
 * dropout masks.
 */
export function trainSeq2SeqLoop(
  model: Seq2Seq,
  train: readonly TokenPair[],
  validation: readonly TokenPair[],
  o: Seq2SeqLoopOptions,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
  resume?: ResumeState,
): Promise<LoopResult> {
  if (train.length === 0) throw new RangeError('seq2seq training needs at least one pair');
  const saved = resume ? savedPosition(resume, train.length, o.batchSize) : null;
  const order = saved ? Random.resume(saved.epochRandom) : new Random(o.seed);
  const sampling = saved ? Random.resume(saved.samplingRandom) : new Random(o.seed + 1);
  if (saved) model.dropoutSeeds = saved.dropoutSeeds;
  let epochRandom = order.save();
  let batches = bucketBatches(train, o.batchSize, order);
  const stepsPerEpoch = batches.length;
  let batchesRun = saved?.batchesRun ?? 0;
  if (batchesRun < 0 || batchesRun > stepsPerEpoch) {
    throw new Error(
      `cannot resume: the checkpoint's batch position ${batchesRun} is outside the epoch's ${stepsPerEpoch} batches`,
    );
  }
  batches.length -= batchesRun;
  const task: TrainingTask = {
    stepsPerEpoch,
    trainStep(step) {
      if (batches.length === 0) {
        epochRandom = order.save();
        batches = bucketBatches(train, o.batchSize, order);
        batchesRun = 0;
      }
      const batch = toPairBatch(model, batches.pop() as TokenPair[]);
      batchesRun++;
      const p = samplingRate(o, step);
      if (p > 0) batch.targetIn = mixDecoderInputs(batch, model.predictions(batch), p, sampling);
      const r = model.lossAndGradients(batch, o.labelSmoothing);
      return { loss: r.loss, tokens: batch.tokens };
    },
    validate: () => (validation.length > 0 ? evaluatePairs(model, validation, o.batchSize) : null),
    position: (): Position => ({
      pairs: train.length,
      batchSize: o.batchSize,
      epochRandom,
      batchesRun,
      samplingRandom: sampling.save(),
      dropoutSeeds: model.dropoutSeeds,
    }),
    save: (path, state) => saveSeq2Seq(model, path, state),
  };
  return runTraining(model, task, o, report, shouldStop, resume);
}
