// The training loop of a language model: truncated backpropagation through time over parallel
// streams of the corpus, with clipping, an optimizer, a learning-rate schedule, validation, early
// stopping and periodic checkpoints. It runs in a worker thread (see fit.ts) and talks to its
// caller only through `report` and `shouldStop`.
import { saveCheckpoint, type TrainingState } from '../io/checkpoint';
import { copyState, type LanguageModel } from '../models/language-model';
import type { Module } from '../nn/parameter';
import type { RecurrentState } from '../nn/recurrent';
import { Random } from '../random';
import { Adam, SGD, clipGradNorm, type Optimizer } from './optim';

export type LrSchedule = 'constant' | 'cosine' | 'linear';

/** Options of a training run that can cross a thread boundary (no functions). */
export interface LoopOptions {
  epochs?: number;
  steps?: number;
  batchSize: number;
  seqLength: number;
  learningRate: number;
  optimizer: 'adam' | 'sgd';
  momentum: number;
  weightDecay: number;
  clipNorm: number;
  lrSchedule: LrSchedule;
  warmupSteps: number;
  /** Validate every this many steps (0: once per epoch). */
  validateEvery: number;
  /** Stop after this many validations without improvement (0: never). */
  earlyStoppingPatience: number;
  /** Stop after this many seconds (0: no limit). */
  timeLimit: number;
  checkpointPath: string | null;
  checkpointEvery: number;
  /**
   * Probability that a window starts from a zero state instead of the state carried from the one
   * before: without it a model trained on carried state rarely sees a cold start, and prompts
   * given to it from a zero state can derail it.
   */
  stateResetRate: number;
  /** Seed of the state-reset draws. */
  seed: number;
}

export interface Progress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  valLoss: number | null;
  learningRate: number;
  tokensPerSec: number;
  elapsed: number;
  eta: number;
}

export type StopReason = 'completed' | 'aborted' | 'early-stopping' | 'time-limit';

export interface History {
  /** Training loss (mean over the steps since the previous entry) at each recorded step. */
  train: { step: number; loss: number }[];
  validation: { step: number; loss: number }[];
  tokensPerSec: number;
  seconds: number;
  steps: number;
  stopped: StopReason;
  bestValLoss: number | null;
}

export type LoopMessage =
  { type: 'progress'; progress: Progress } | { type: 'checkpoint'; path: string; step: number };

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

/** Mean cross-entropy (nats per token) of the model over a token stream, state carried. */
export function evaluateTokens(
  model: LanguageModel,
  tokens: Int32Array,
  batch: number,
  steps: number,
): { loss: number; count: number } {
  const batcher = new StreamBatcher(tokens, batch, steps, 'the evaluation text');
  const inputs = new Int32Array(batch * steps);
  const targets = new Int32Array(batch * steps);
  let state: RecurrentState | undefined;
  let sum = 0;
  let count = 0;
  for (let j = 0; j < batcher.chunks; j++) {
    batcher.chunk(j, inputs, targets);
    const r = model.lossSum(inputs, targets, steps, batch, state);
    sum += r.sum;
    count += r.count;
    state = copyState(r.state);
  }
  return { loss: sum / count, count };
}

/** The optimizer a training run asks for, over every parameter of `model`. */
export function makeOptimizer(
  model: Module,
  o: Pick<LoopOptions, 'optimizer' | 'learningRate' | 'momentum' | 'weightDecay'>,
): Optimizer {
  return o.optimizer === 'sgd'
    ? new SGD(model.parameters(), {
        lr: o.learningRate,
        momentum: o.momentum,
        weightDecay: o.weightDecay,
      })
    : new Adam(model.parameters(), { lr: o.learningRate, weightDecay: o.weightDecay });
}

/** The learning rate at `step` of `total`: linear warmup, then the schedule. */
export function scheduledLr(
  o: Pick<LoopOptions, 'learningRate' | 'warmupSteps' | 'lrSchedule'>,
  step: number,
  total: number,
): number {
  if (o.warmupSteps > 0 && step < o.warmupSteps)
    return (o.learningRate * (step + 1)) / o.warmupSteps;
  const t = total > o.warmupSteps ? (step - o.warmupSteps) / (total - o.warmupSteps) : 0;
  switch (o.lrSchedule) {
    case 'cosine':
      return o.learningRate * (0.1 + 0.45 * (1 + Math.cos(Math.PI * Math.min(1, t))));
    case 'linear':
      return o.learningRate * (1 - 0.9 * Math.min(1, t));
    default:
      return o.learningRate;
  }
}

/**
 * The validation bookkeeping of a training loop: the mean training loss since the last
 * validation, the validation losses, the best one and how many validations ago it was, written
 * into `history` as it goes.
 */
export class ValidationTracker {
  best: number;
  sinceBest: number;
  last: number | null;
  private lossSum = 0;
  private lossSteps = 0;

  constructor(
    readonly history: History,
    private readonly patience: number,
    sinceBest = 0,
  ) {
    this.best = history.bestValLoss ?? Infinity;
    this.sinceBest = sinceBest;
    this.last = history.validation.at(-1)?.loss ?? null;
  }

  addTrainingLoss(loss: number): void {
    this.lossSum += loss;
    this.lossSteps++;
  }

  /** Records a validation loss at `step`; true when early stopping should end the run. */
  record(step: number, valLoss: number): boolean {
    this.history.train.push({ step, loss: this.lossSum / this.lossSteps });
    this.lossSum = 0;
    this.lossSteps = 0;
    this.history.validation.push({ step, loss: valLoss });
    this.last = valLoss;
    if (valLoss < this.best - 1e-4) {
      this.best = valLoss;
      this.sinceBest = 0;
    } else {
      this.sinceBest++;
    }
    return this.patience > 0 && this.sinceBest >= this.patience;
  }

  get bestOrNull(): number | null {
    return this.best === Infinity ? null : this.best;
  }

  /** At the end of a run: the mean training loss of the steps since the last validation. */
  finish(step: number): void {
    if (this.lossSteps > 0) this.history.train.push({ step, loss: this.lossSum / this.lossSteps });
    this.lossSteps = 0;
    this.history.bestValLoss = this.bestOrNull;
  }
}

export interface LoopResult {
  history: History;
  training: TrainingState;
  optimizerTensors: Record<string, Float32Array>;
}

/**
 * Trains `model` on `train` tokens (validating on `validation` when non-empty). `resume` carries
 * the state of an earlier run (from a checkpoint) to continue where it stopped.
 */
export async function trainLoop(
  model: LanguageModel,
  train: Int32Array,
  validation: Int32Array,
  o: LoopOptions,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
  resume?: { training: TrainingState; optimizerTensors: Record<string, Float32Array> },
): Promise<LoopResult> {
  const B = o.batchSize;
  const T = o.seqLength;
  const batcher = new StreamBatcher(train, B, T, 'the training text');
  const totalSteps = o.steps ?? (o.epochs ?? 1) * batcher.chunks;
  const optimizer = makeOptimizer(model, o);
  if (resume)
    optimizer.loadState({ step: resume.training.optimizer.step, tensors: resume.optimizerTensors });
  const params = model.parameters();
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const progress = resume?.training.progress ?? {};
  let step = resume?.training.step ?? 0;
  let epoch = resume?.training.epoch ?? 0;
  let chunk = typeof progress.chunk === 'number' ? progress.chunk : 0;
  const history: History = (progress.history as History | undefined) ?? {
    train: [],
    validation: [],
    tokensPerSec: 0,
    seconds: 0,
    steps: 0,
    stopped: 'completed',
    bestValLoss: null,
  };
  const tracker = new ValidationTracker(
    history,
    o.earlyStoppingPatience,
    typeof progress.sinceBest === 'number' ? progress.sinceBest : 0,
  );
  let state: RecurrentState | undefined;
  const resets = new Random(o.seed + step);
  const started = performance.now();
  let lastReport = started;
  let lastLoss = NaN;
  const firstStep = step;
  const validateEvery = o.validateEvery > 0 ? o.validateEvery : batcher.chunks;
  let stopped: StopReason = 'completed';

  const snapshot = (): TrainingState => ({
    optimizer: {
      kind: optimizer.kind,
      step: optimizer.state().step,
      options: { lr: o.learningRate, weightDecay: o.weightDecay, momentum: o.momentum },
    },
    step,
    epoch,
    progress: {
      chunk,
      sinceBest: tracker.sinceBest,
      history: { ...history, bestValLoss: tracker.bestOrNull },
    },
  });
  const elapsed = () => (performance.now() - started) / 1000;
  const tokensPerSec = () => ((step - firstStep) * B * T) / Math.max(elapsed(), 1e-9);
  const sendProgress = () => {
    const rate = tokensPerSec();
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
        eta: rate > 0 ? ((totalSteps - step) * B * T) / rate : Infinity,
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
    if (chunk >= batcher.chunks) {
      chunk = 0;
      epoch++;
      state = undefined;
    }
    if (o.stateResetRate > 0 && resets.uniform() < o.stateResetRate) state = undefined;
    batcher.chunk(chunk, inputs, targets);
    optimizer.lr = scheduledLr(o, step, totalSteps);
    model.zeroGrad();
    const r = model.lossAndGradients(inputs, targets, T, B, state);
    if (!Number.isFinite(r.loss)) {
      throw new Error(
        `training diverged at step ${step + 1}: the loss is ${r.loss}; lower the learning rate`,
      );
    }
    state = copyState(r.state);
    if (o.clipNorm > 0) clipGradNorm(params, o.clipNorm);
    optimizer.step();
    step++;
    chunk++;
    lastLoss = r.loss;
    tracker.addTrainingLoss(r.loss);

    const validateNow =
      validation.length > 0 && (step % validateEvery === 0 || step === totalSteps);
    if (validateNow) {
      const valLoss = evaluateTokens(model, validation, Math.min(B, evalBatch(validation, T)), T);
      const patienceOut = tracker.record(step, valLoss.loss);
      sendProgress();
      if (patienceOut) {
        stopped = 'early-stopping';
        break;
      }
    } else if (performance.now() - lastReport > 250) {
      sendProgress();
    }
    if (o.checkpointPath && o.checkpointEvery > 0 && step % o.checkpointEvery === 0) {
      await saveCheckpoint(model, o.checkpointPath, {
        state: snapshot(),
        optimizerTensors: optimizer.state().tensors,
      });
      report({ type: 'checkpoint', path: o.checkpointPath, step });
    }
  }
  tracker.finish(step);
  sendProgress();
  history.seconds += elapsed();
  history.steps = step;
  history.tokensPerSec = tokensPerSec();
  history.stopped = stopped;
  return { history, training: snapshot(), optimizerTensors: optimizer.state().tensors };
}

/** The largest batch (up to 64) that leaves at least one window of `steps` in `tokens`. */
export function evalBatch(tokens: Int32Array, steps: number): number {
  return Math.max(1, Math.min(64, Math.floor((tokens.length - 1) / steps)));
}
