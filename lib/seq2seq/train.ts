// The training loop of a sequence-to-sequence model: teacher forcing over length-bucketed padded
// batches, label smoothing, clipping, the language model's optimizers and schedules, validation
// and early stopping. It runs in a worker thread (see fit.ts) and talks to its caller only
// through `report` and `shouldStop`.
import type { Seq2Seq } from '../models/seq2seq';
import { Random } from '../random';
import { clipGradNorm } from '../train/optim';
import {
  makeOptimizer,
  scheduledLr,
  type History,
  type LoopMessage,
  type LrSchedule,
  type StopReason,
  ValidationTracker,
} from '../train/loop';
import { saveSeq2Seq } from './checkpoint';
import { pairBatch, type PairBatch } from './batch';

/** A tokenized training pair. */
export interface TokenPair {
  source: Int32Array;
  target: Int32Array;
}

/** Options of a training run that can cross a thread boundary (no functions). */
export interface Seq2SeqLoopOptions {
  epochs?: number;
  steps?: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'adam' | 'sgd';
  momentum: number;
  weightDecay: number;
  clipNorm: number;
  lrSchedule: LrSchedule;
  warmupSteps: number;
  labelSmoothing: number;
  /** Validate every this many steps (0: once per epoch). */
  validateEvery: number;
  earlyStoppingPatience: number;
  /** Stop after this many seconds (0: no limit). */
  timeLimit: number;
  seed: number;
  checkpointPath: string | null;
  checkpointEvery: number;
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

/** Trains `model` on `train`, validating on `validation` when non-empty. */
export async function trainSeq2SeqLoop(
  model: Seq2Seq,
  train: readonly TokenPair[],
  validation: readonly TokenPair[],
  o: Seq2SeqLoopOptions,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
): Promise<History> {
  if (train.length === 0) throw new RangeError('seq2seq training needs at least one pair');
  const rng = new Random(o.seed);
  const batchesPerEpoch = Math.ceil(train.length / o.batchSize);
  const totalSteps = o.steps ?? (o.epochs ?? 1) * batchesPerEpoch;
  const optimizer = makeOptimizer(model, o);
  const params = model.parameters();
  const validateEvery = o.validateEvery > 0 ? o.validateEvery : batchesPerEpoch;
  const history: History = {
    train: [],
    validation: [],
    tokensPerSec: 0,
    seconds: 0,
    steps: 0,
    stopped: 'completed',
    bestValLoss: null,
  };
  const tracker = new ValidationTracker(history, o.earlyStoppingPatience);
  let step = 0;
  let epoch = 0;
  let tokens = 0;
  let batches: TokenPair[][] = [];
  let lastLoss = NaN;
  let stopped: StopReason = 'completed';
  const started = performance.now();
  let lastReport = started;
  const elapsed = () => (performance.now() - started) / 1000;
  const sendProgress = () => {
    const rate = tokens / Math.max(elapsed(), 1e-9);
    const perStep = step > 0 ? elapsed() / step : 0;
    report({
      type: 'progress',
      progress: {
        step,
        totalSteps,
        epoch,
        loss: lastLoss,
        valLoss: tracker.last,
        learningRate: optimizer.lr,
        tokensPerSec: rate,
        elapsed: elapsed(),
        eta: perStep > 0 ? (totalSteps - step) * perStep : Infinity,
      },
    });
    lastReport = performance.now();
  };

  while (step < totalSteps) {
    if (shouldStop()) {
      stopped = 'aborted';
      break;
    }
    if (o.timeLimit > 0 && elapsed() >= o.timeLimit) {
      stopped = 'time-limit';
      break;
    }
    if (batches.length === 0) {
      if (step > 0) epoch++;
      batches = bucketBatches(train, o.batchSize, rng);
    }
    const batch = toPairBatch(model, batches.pop() as TokenPair[]);
    optimizer.lr = scheduledLr(o, step, totalSteps);
    model.zeroGrad();
    const r = model.lossAndGradients(batch, o.labelSmoothing);
    if (!Number.isFinite(r.loss)) {
      throw new Error(
        `training diverged at step ${step + 1}: the loss is ${r.loss}; lower the learning rate`,
      );
    }
    if (o.clipNorm > 0) clipGradNorm(params, o.clipNorm);
    optimizer.step();
    step++;
    tokens += batch.tokens;
    lastLoss = r.loss;
    tracker.addTrainingLoss(r.loss);

    if (validation.length > 0 && (step % validateEvery === 0 || step === totalSteps)) {
      const patienceOut = tracker.record(step, evaluatePairs(model, validation, o.batchSize));
      sendProgress();
      if (patienceOut) {
        stopped = 'early-stopping';
        break;
      }
    } else if (performance.now() - lastReport > 250) {
      sendProgress();
    }
    if (o.checkpointPath && o.checkpointEvery > 0 && step % o.checkpointEvery === 0) {
      await saveSeq2Seq(model, o.checkpointPath);
      report({ type: 'checkpoint', path: o.checkpointPath, step });
    }
  }
  tracker.finish(step);
  sendProgress();
  history.seconds = elapsed();
  history.steps = step;
  history.tokensPerSec = tokens / Math.max(elapsed(), 1e-9);
  history.stopped = stopped;
  return history;
}
