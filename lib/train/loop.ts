// The training loops: `runTraining` drives any model through its steps (learning-rate schedule,
// clipping, the optimizer, validation, early stopping, periodic resumable checkpoints), and
// `trainLoop` feeds it a language model's truncated backpropagation through time over parallel
// streams of the corpus. They run in a worker thread (see fit.ts) and talk to their caller only
// through `report` and `shouldStop`.
import { saveCheckpoint } from '../checkpoint/language-model';
import type { ResumeState, TrainingState } from '../checkpoint/resume';
import { copyState, type LanguageModel } from '../models/language-model';
import type { Module } from '../nn/parameter';
import type { RecurrentState } from '../nn/recurrent';
import { Random } from '../core/random';
import { Adam, SGD, clipGradNorm, type Optimizer } from './optim';

export type LrSchedule = 'constant' | 'cosine' | 'linear';

/** Options every training run takes; they can cross a thread boundary (no functions). */
export interface BaseLoopOptions {
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
  /** Validate every this many steps (0: once per epoch). */
  validateEvery: number;
  /** Stop after this many validations without improvement (0: never). */
  earlyStoppingPatience: number;
  /** Stop after this many seconds (0: no limit). */
  timeLimit: number;
  checkpointPath: string | null;
  checkpointEvery: number;
  /** Seed of the loop's random draws. */
  seed: number;
}

/** A language model's training options. */
export interface LoopOptions extends BaseLoopOptions {
  seqLength: number;
  /**
   * Probability that a window starts from a zero state instead of the state carried from the one
   * before: without it a model trained on carried state rarely sees a cold start, and prompts
   * given to it from a zero state can derail it.
   */
  stateResetRate: number;
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
  o: Pick<BaseLoopOptions, 'optimizer' | 'learningRate' | 'momentum' | 'weightDecay'>,
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
  o: Pick<BaseLoopOptions, 'learningRate' | 'warmupSteps' | 'lrSchedule'>,
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

/** What a ValidationTracker needs to continue after a resume. */
interface TrackerState {
  sinceBest: number;
  lossSum: number;
  lossSteps: number;
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
  private lossSum: number;
  private lossSteps: number;

  constructor(
    readonly history: History,
    private readonly patience: number,
    saved: Partial<TrackerState> = {},
  ) {
    this.best = history.bestValLoss ?? Infinity;
    this.sinceBest = saved.sinceBest ?? 0;
    this.lossSum = saved.lossSum ?? 0;
    this.lossSteps = saved.lossSteps ?? 0;
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

  /** The counters a resumed run needs (the history travels on its own). */
  state(): TrackerState {
    return { sinceBest: this.sinceBest, lossSum: this.lossSum, lossSteps: this.lossSteps };
  }

  /** At the end of a run: the mean training loss of the steps since the last validation. */
  finish(step: number): void {
    if (this.lossSteps > 0) this.history.train.push({ step, loss: this.lossSum / this.lossSteps });
    this.lossSteps = 0;
    this.history.bestValLoss = this.bestOrNull;
  }
}

export interface LoopResult extends ResumeState {
  history: History;
}

/**
 * A model kind's training loop: trains `model` on `train`, validating on `validation`, reporting
 * through `report` until done or `shouldStop()`, continuing from `resume` when given.
 */
export type TrainingLoop<M, Data, Options> = (
  model: M,
  train: Data,
  validation: Data,
  o: Options,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
  resume?: ResumeState,
) => Promise<LoopResult>;

/** One model's side of a training run, which `runTraining` drives. */
export interface TrainingTask {
  /** Optimizer steps in one pass over the training data. */
  readonly stepsPerEpoch: number;
  /**
   * Forward and backward over the next batch for step `step` (0-based), adding to the zeroed
   * gradients: the batch's mean loss and how many tokens it trained on.
   */
  trainStep(step: number): { loss: number; tokens: number };
  /** The validation loss, or null without validation data. */
  validate(): number | null;
  /** Where the task stands (batch order, random streams), for a checkpoint to resume from. */
  position(): Record<string, unknown>;
  /** Writes a resumable checkpoint. */
  save(path: string, resume: ResumeState): Promise<void>;
}

/**
 * Trains `model` through `task`: per step the scheduled learning rate, the task's forward and
 * backward, clipping and the optimizer; validation (with early stopping), progress reports and
 * checkpoints as `o` asks. `resume` continues a run from a checkpoint's state; the task restores
 * its own position from `resume.training.progress`.
 */
export async function runTraining(
  model: Module,
  task: TrainingTask,
  o: BaseLoopOptions,
  report: (m: LoopMessage) => void,
  shouldStop: () => boolean,
  resume?: ResumeState,
): Promise<LoopResult> {
  const totalSteps = o.steps ?? (o.epochs ?? 1) * task.stepsPerEpoch;
  const optimizer = makeOptimizer(model, o);
  if (resume) {
    const saved = resume.training.optimizer.kind;
    if (saved !== o.optimizer) {
      throw new Error(
        `cannot resume: the checkpoint's optimizer is '${saved}', this run asks for '${o.optimizer}'`,
      );
    }
    optimizer.loadState({ step: resume.training.optimizer.step, tensors: resume.optimizerTensors });
  }
  const params = model.parameters();
  const progress = resume?.training.progress ?? {};
  let step = resume?.training.step ?? 0;
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
    progress as Partial<TrackerState>,
  );
  const started = performance.now();
  let lastReport = started;
  let lastLoss = NaN;
  let tokens = 0;
  const firstStep = step;
  const validateEvery = o.validateEvery > 0 ? o.validateEvery : task.stepsPerEpoch;
  let stopped: StopReason = 'completed';
  // The epoch of the last step run.
  const epoch = () => (step > 0 ? Math.floor((step - 1) / task.stepsPerEpoch) : 0);

  const snapshot = (): TrainingState => ({
    optimizer: {
      kind: optimizer.kind,
      step: optimizer.state().step,
      options: { lr: o.learningRate, weightDecay: o.weightDecay, momentum: o.momentum },
    },
    step,
    epoch: epoch(),
    progress: {
      ...task.position(),
      ...tracker.state(),
      history: { ...history, bestValLoss: tracker.bestOrNull },
    },
  });
  const elapsed = () => (performance.now() - started) / 1000;
  const sendProgress = () => {
    const perStep = step > firstStep ? elapsed() / (step - firstStep) : 0;
    report({
      type: 'progress',
      progress: {
        step,
        totalSteps,
        epoch: epoch(),
        loss: lastLoss,
        valLoss: tracker.last,
        learningRate: optimizer.lr,
        tokensPerSec: tokens / Math.max(elapsed(), 1e-9),
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
    optimizer.lr = scheduledLr(o, step, totalSteps);
    model.zeroGrad();
    const r = task.trainStep(step);
    if (!Number.isFinite(r.loss)) {
      throw new Error(
        `training diverged at step ${step + 1}: the loss is ${r.loss}; lower the learning rate`,
      );
    }
    if (o.clipNorm > 0) clipGradNorm(params, o.clipNorm);
    optimizer.step();
    step++;
    tokens += r.tokens;
    lastLoss = r.loss;
    tracker.addTrainingLoss(r.loss);

    const valLoss = step % validateEvery === 0 || step === totalSteps ? task.validate() : null;
    if (valLoss !== null) {
      const patienceOut = tracker.record(step, valLoss);
      sendProgress();
      if (patienceOut) {
        stopped = 'early-stopping';
        break;
      }
    } else if (performance.now() - lastReport > 250) {
      sendProgress();
    }
    if (o.checkpointPath && o.checkpointEvery > 0 && step % o.checkpointEvery === 0) {
      await task.save(o.checkpointPath, {
        training: snapshot(),
        optimizerTensors: optimizer.state().tensors,
      });
      report({ type: 'checkpoint', path: o.checkpointPath, step });
    }
  }
  tracker.finish(step);
  sendProgress();
  history.seconds += elapsed();
  history.steps = step;
  history.tokensPerSec = tokens / Math.max(elapsed(), 1e-9);
  history.stopped = stopped;
  return { history, training: snapshot(), optimizerTensors: optimizer.state().tensors };
}

/**
 * Trains a language model on `train` tokens (validating on `validation` when non-empty).
 * `resume` carries the state of an earlier run (from a checkpoint) to continue where it stopped.
 */
export function trainLoop(
  model: LanguageModel,
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
  const saved = resume?.training.progress.chunk;
  let chunk = typeof saved === 'number' ? saved : 0;
  let state: RecurrentState | undefined;
  const resets = new Random(o.seed + (resume?.training.step ?? 0));
  const task: TrainingTask = {
    stepsPerEpoch: batcher.chunks,
    trainStep() {
      if (chunk >= batcher.chunks) {
        chunk = 0;
        state = undefined;
      }
      if (o.stateResetRate > 0 && resets.uniform() < o.stateResetRate) state = undefined;
      batcher.chunk(chunk, inputs, targets);
      const r = model.lossAndGradients(inputs, targets, T, B, state);
      state = copyState(r.state);
      chunk++;
      return { loss: r.loss, tokens: B * T };
    },
    validate: () =>
      validation.length > 0
        ? evaluateTokens(model, validation, Math.min(B, evalBatch(validation, T)), T).loss
        : null,
    position: () => ({ chunk }),
    save: (path, r) =>
      saveCheckpoint(model, path, { state: r.training, optimizerTensors: r.optimizerTensors }),
  };
  return runTraining(model, task, o, report, shouldStop, resume);
}

/** The largest batch (up to 64) that leaves at least one window of `steps` in `tokens`. */
export function evalBatch(tokens: Int32Array, steps: number): number {
  return Math.max(1, Math.min(64, Math.floor((tokens.length - 1) / steps)));
}
