// fit(): validates the options, tokenizes the corpus, and runs the training loop in a worker
// thread over the model's shared parameter memory, so the caller's event loop keeps running.

import type { ResumeState, TrainingState } from '../checkpoint/resume';
import type { LanguageModelNetwork, LanguageModelSpec } from '../models/language-model';
import type { TokenizerJSON, UnknownPolicy } from '../text';
import { addonChoice, native, type Precision } from '../core/native';
import { checkChoice, checkInt, checkNumber } from '../core/validate';
import { type Module, type Parameter } from '../nn/parameter';
import { checkTrainable } from '../nn/quantize';
import type { LoopOptions } from './language-model';
import type { History, LoopMessage, LoopResult, LrSchedule, Progress, TrainingLoop } from './loop';
import { serveCalls, WorkerClient } from '../threads/protocol';
import { workerScript } from '../threads/start';

export interface FitOptions {
  /** Passes over the training text (default 1), unless `steps` is given. */
  epochs?: number;
  /** Optimizer steps to run (overrides epochs). */
  steps?: number;
  /** Parallel streams per step (default 32). */
  batchSize?: number;
  /** Time steps per truncated-BPTT window (default 64). */
  seqLength?: number;
  /** Default 2e-3 for Adam, 0.1 for SGD. */
  learningRate?: number;
  optimizer?: 'adam' | 'sgd';
  /** SGD momentum (default 0.9). */
  momentum?: number;
  weightDecay?: number;
  /** Global gradient-norm clip (default 5; 0 disables). */
  clipNorm?: number;
  lrSchedule?: LrSchedule;
  warmupSteps?: number;
  /** Fraction of the text held back (from its end) for validation (default 0.05; 0: none). */
  validationSplit?: number;
  /**
   * Text the tokenizer has no id for (a word tokenizer keeps the `maxVocab` most frequent words):
   * `'error'` (default) throws naming it, `'map'` trains on the unknown token in its place.
   */
  unknown?: UnknownPolicy;
  /** Validate every this many steps (default: once per epoch). */
  validateEvery?: number;
  /** Stop when validation loss has not improved for `patience` validations. */
  earlyStopping?: { patience: number };
  /** Stop after this many seconds. */
  timeLimit?: number;
  /** Seed for dropout masks and state resets. */
  seed?: number;
  /**
   * The precision of the matrix products of the recurrent stack and the output layer, forward
   * and backward: 'float32' (default), or 'bf16' (mixed precision: the products' operands rounded
   * to bfloat16, their sums float32; the weights, gradients, optimizer and loss stay float32).
   * 'bf16' needs a CPU with AVX512-BF16 and is refused elsewhere. Language models only.
   */
  precision?: Precision;
  /**
   * Probability that a training window starts from a zero state rather than the state carried
   * from the previous window (default 0.05), so that the model also learns to start cold.
   */
  stateResetRate?: number;
  /** Write a resumable checkpoint to `path` every `every` steps. */
  checkpoint?: { path: string; every: number };
  /** Continue an earlier run: the training state and optimizer tensors of a checkpoint. */
  resume?: { training: TrainingState | null; optimizerTensors: Record<string, Float32Array> };
  onProgress?: (progress: Progress) => void;
  onCheckpoint?: (info: { path: string; step: number }) => void;
  signal?: AbortSignal;
}

export type { History, Progress };

/** Validates fit options and fills in their defaults. */
export function loopOptions(o: FitOptions): LoopOptions {
  const optimizer = o.optimizer ?? 'adam';
  if (optimizer !== 'adam' && optimizer !== 'sgd') {
    throw new RangeError(`optimizer must be 'adam' or 'sgd', got ${String(optimizer)}`);
  }
  const schedule = o.lrSchedule ?? 'constant';
  if (!['constant', 'cosine', 'linear'].includes(schedule)) {
    throw new RangeError(
      `lrSchedule must be 'constant', 'cosine' or 'linear', got ${String(schedule)}`,
    );
  }
  if (o.epochs !== undefined && o.steps !== undefined) {
    throw new RangeError('give either epochs or steps, not both');
  }
  return {
    epochs: o.epochs === undefined ? undefined : checkInt('epochs', o.epochs, 1),
    steps: o.steps === undefined ? undefined : checkInt('steps', o.steps, 1),
    batchSize: checkInt('batchSize', o.batchSize ?? 32, 1, 65536),
    seqLength: checkInt('seqLength', o.seqLength ?? 64, 1, 1_000_000),
    learningRate: checkNumber(
      'learningRate',
      o.learningRate ?? (optimizer === 'sgd' ? 0.1 : 2e-3),
      1e-12,
      1e3,
    ),
    optimizer,
    momentum: checkNumber('momentum', o.momentum ?? 0.9, 0, 1),
    weightDecay: checkNumber('weightDecay', o.weightDecay ?? 0, 0, 1e3),
    clipNorm: checkNumber('clipNorm', o.clipNorm ?? 5, 0, 1e12),
    lrSchedule: schedule,
    warmupSteps: checkInt('warmupSteps', o.warmupSteps ?? 0, 0),
    validateEvery: checkInt('validateEvery', o.validateEvery ?? 0, 0),
    earlyStoppingPatience: checkInt('earlyStopping.patience', o.earlyStopping?.patience ?? 0, 0),
    timeLimit: checkNumber('timeLimit', o.timeLimit ?? 0, 0, 1e9),
    checkpointPath: o.checkpoint?.path ?? null,
    checkpointEvery: o.checkpoint ? checkInt('checkpoint.every', o.checkpoint.every, 1) : 0,
    stateResetRate: checkNumber('stateResetRate', o.stateResetRate ?? 0.05, 0, 1),
    seed: checkInt('seed', o.seed ?? 0, 0, Number.MAX_SAFE_INTEGER),
    precision: checkPrecision(o.precision === undefined ? 'float32' : o.precision),
  };
}

/**
 * Checks a training precision: 'float32', or 'bf16' where this process has a kernel for bfloat16
 * products (info().bf16.products); a CPU without one gets an error saying what it lacks.
 */
export function checkPrecision(value: unknown): Precision {
  const precision = checkChoice<Precision>('precision', value, ['float32', 'bf16']);
  const bf16 = precision === 'bf16' ? native.info().bf16 : null;
  if (bf16 && bf16.products === null) {
    const cpu = addonChoice.cpu ? `this CPU (${addonChoice.cpu})` : 'this CPU';
    const amx = bf16.amxBf16 ? ' (it has AMX-BF16, which rnnkit does not use)' : '';
    throw new Error(
      `precision 'bf16' needs a CPU with AVX512-BF16 (the vdpbf16ps instruction), and ${cpu} ` +
        `lacks it${amx}; train with precision 'float32' (the default)`,
    );
  }
  return precision;
}

/** Splits tokens into a training head and a validation tail. */
export function splitTokens(tokens: Int32Array, validationSplit: number): [Int32Array, Int32Array] {
  checkNumber('validationSplit', validationSplit, 0, 0.9);
  const n = Math.floor(tokens.length * validationSplit);
  return [tokens.subarray(0, tokens.length - n), tokens.subarray(tokens.length - n)];
}

export interface FitResult extends History {
  /** Training state and optimizer tensors, for a resumable checkpoint. */
  resume: ResumeState;
}

/** Trains the model in a worker thread; resolves with the loss history. */
export function fit(
  model: LanguageModelNetwork,
  corpus: string | Int32Array,
  options: FitOptions = {},
): Promise<FitResult> {
  checkTrainable(model);
  const o = loopOptions(options);
  let tokens: Int32Array;
  if (typeof corpus === 'string') {
    if (!model.tokenizer)
      throw new Error('fit: the model has no tokenizer; pass token ids or give it one');
    if (corpus.length === 0) throw new RangeError('fit: the training text is empty');
    tokens = model.tokenizer.encode(corpus, { unknown: options.unknown });
  } else if (corpus instanceof Int32Array) {
    tokens = corpus;
  } else {
    throw new TypeError('fit: corpus must be a string or an Int32Array of token ids');
  }
  const [train, validation] = splitTokens(tokens, options.validationSplit ?? 0.05);
  if (options.signal?.aborted) return Promise.reject(abortError());
  const input: LmTrainingInput = {
    spec: model.spec,
    tokenizer: model.tokenizer?.toJSON() ?? null,
    seed: options.seed ?? 0,
    params: Object.fromEntries(model.namedParameters().map(([name, p]) => [name, p.share()])),
    train,
    validation,
    options: o,
    resume: options.resume?.training
      ? { training: options.resume.training, optimizerTensors: options.resume.optimizerTensors }
      : null,
  };
  return runTrainingWorker(workerScript(__filename, 'worker'), input, options);
}

/** A training worker's progress and checkpoint reports, as protocol progress messages. */
type Report = LoopMessage & { id: number };

/**
 * Runs a training worker script over `workerData` (see serveTraining) as one call of the worker
 * protocol and resolves with the history and resume state. Progress and checkpoint reports go to
 * the callbacks; aborting the signal cancels the call, which the worker's loop polls between steps.
 */
export async function runTrainingWorker(
  script: string,
  workerData: unknown,
  options: Pick<FitOptions, 'onProgress' | 'onCheckpoint' | 'signal'>,
): Promise<FitResult> {
  const worker = await WorkerClient.start<null, object, LoopResult, Report>(
    script,
    { workerData },
    { what: 'fit: the training worker' },
  );
  try {
    const { history, training, optimizerTensors } = await worker.call(
      {},
      {
        signal: options.signal,
        onProgress: (m) => {
          if (m.type === 'progress') options.onProgress?.(m.progress);
          else options.onCheckpoint?.({ path: m.path, step: m.step });
        },
      },
    );
    return { ...history, resume: { training, optimizerTensors } };
  } finally {
    await worker.close('fit: the training worker');
  }
}

/** What the language model's training worker (worker.ts) gets. */
export interface LmTrainingInput extends TrainingWorkerData<Int32Array, LoopOptions> {
  spec: LanguageModelSpec;
  tokenizer: TokenizerJSON | null;
  seed: number;
}

/** What every training worker gets besides its model's description. */
export interface TrainingWorkerData<Data, Options> {
  /** The caller's parameters (shared memory), by name. */
  params: Record<string, Float32Array>;
  train: Data;
  validation: Data;
  options: Options;
  resume: ResumeState | null;
}

/** A model that a worker rebuilds over the caller's parameters. */
interface SharedModel extends Module {
  namedParameters(): [string, Parameter][];
}

/**
 * The worker side of runTrainingWorker: builds the model and points its parameters at the
 * caller's memory (the start-up), then answers the call by running `loop`, with the call's cancel
 * flag as `shouldStop` and its reports as progress messages.
 */
export function serveTraining<M extends SharedModel, Data, Options>(
  input: TrainingWorkerData<Data, Options>,
  build: () => M,
  loop: TrainingLoop<M, Data, Options>,
): Promise<void> {
  return serveCalls<null, object, LoopResult, Report>(async () => {
    const model = build();
    for (const [name, p] of model.namedParameters()) p.adopt(input.params[name]);
    return {
      info: null,
      async handle(call, progress, cancelled) {
        const { train, validation, options, resume } = input;
        const report = (m: LoopMessage) => progress({ ...m, id: call.id });
        const result = await loop(
          model,
          train,
          validation,
          options,
          report,
          cancelled,
          resume ?? undefined,
        );
        return { result, transfer: [] };
      },
    };
  });
}

/** The rejection of a fit whose signal was aborted before it started. */
export function abortError(): Error {
  const e = new Error('fit: aborted before training started');
  e.name = 'AbortError';
  return e;
}
