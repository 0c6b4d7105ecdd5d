// Seq2Seq training from the caller's side: validates the options, tokenizes the pairs, holds back
// a shuffled validation split and runs the training loop in a worker thread over the model's
// shared parameter memory, so the caller's event loop keeps running.
import type { ResumeState } from '../checkpoint/resume';
import type { Seq2SeqNetwork } from '../models/seq2seq';
import type { UnknownPolicy } from '../text';
import type { TextPair } from '../text/pairs';
import { checkInt, checkNumber } from '../core/validate';
import { Random } from '../core/random';
import { abortError, loopOptions, runTrainingWorker, type FitOptions, type FitResult } from './fit';
import type { Seq2SeqLoopOptions, TokenPair } from './seq2seq';
import type { Seq2SeqTrainingInput } from './seq2seq-worker';
import { workerScript } from '../threads/start';
import { checkTrainable } from '../nn/quantize';

export interface Seq2SeqFitOptions extends Omit<
  FitOptions,
  'seqLength' | 'stateResetRate' | 'resume' | 'precision'
> {
  /** Mix the one-hot targets with the uniform distribution (0..1, default 0.1). */
  labelSmoothing?: number;
  /**
   * Parallel scheduled sampling (Duckworth et al. 2019): the probability (0..1, default 0) that a
   * decoder input is the model's own greedy prediction of that token instead of the reference.
   * `{ rate, rampSteps }` raises it linearly from 0 over the first `rampSteps` steps.
   */
  scheduledSampling?: number | { rate: number; rampSteps: number };
  /** Continue an earlier run exactly: a checkpoint's `resumeState` (same pairs, seed and batch size). */
  resume?: ResumeState;
  /** Text outside the vocabularies: 'error' (default) or 'map' to the unknown token. */
  unknown?: UnknownPolicy;
}

/** Text pairs -> token pairs with the model's tokenizers; names the pair that fails. */
export function tokenizePairs(
  model: Seq2SeqNetwork,
  pairs: readonly TextPair[],
  unknown: UnknownPolicy = 'error',
): TokenPair[] {
  const { sourceTokenizer: src, targetTokenizer: tgt } = model;
  if (!src || !tgt) throw new Error('the model needs source and target tokenizers for text pairs');
  return pairs.map((p, i) => {
    if (typeof p?.source !== 'string' || typeof p?.target !== 'string') {
      throw new TypeError(`pairs[${i}] must be { source: string, target: string }`);
    }
    try {
      const pair = {
        source: src.encode(p.source, { unknown }),
        target: tgt.encode(p.target, { unknown }),
      };
      if (pair.source.length === 0) throw new RangeError('the source is empty');
      return pair;
    } catch (error) {
      throw new Error(`pairs[${i}]: ${(error as Error).message}`);
    }
  });
}

/** Shuffles the pairs with `seed` and splits off the last `fraction` for validation. */
export function splitPairs<T>(pairs: readonly T[], fraction: number, seed: number): [T[], T[]] {
  checkNumber('validationSplit', fraction, 0, 0.9);
  const rng = new Random(seed);
  const order = [...pairs];
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const n = Math.floor(order.length * fraction);
  return [order.slice(0, order.length - n), order.slice(order.length - n)];
}

/** Checks the seq2seq-only fit options and fills in their defaults. */
function seq2seqLoopOptions(options: Seq2SeqFitOptions): Seq2SeqLoopOptions {
  const ss = options.scheduledSampling ?? 0;
  const ramped = typeof ss === 'object' && ss !== null;
  const precision: unknown = (options as FitOptions).precision;
  if (precision !== undefined && precision !== 'float32') {
    throw new RangeError(
      `precision must be 'float32' for a seq2seq model (bf16 training is for language models), got ${JSON.stringify(precision)}`,
    );
  }
  return {
    ...loopOptions(options),
    labelSmoothing: checkNumber('labelSmoothing', options.labelSmoothing ?? 0.1, 0, 1),
    scheduledSampling: checkNumber(
      ramped ? 'scheduledSampling.rate' : 'scheduledSampling',
      ramped ? ss.rate : ss,
      0,
      1,
    ),
    scheduledSamplingRamp: ramped ? checkInt('scheduledSampling.rampSteps', ss.rampSteps, 0) : 0,
  };
}

/** Trains the model in a worker thread; resolves with the loss history and resume state. */
export function fitSeq2Seq(
  model: Seq2SeqNetwork,
  pairs: readonly TextPair[],
  options: Seq2SeqFitOptions = {},
): Promise<FitResult> {
  checkTrainable(model);
  const loop = seq2seqLoopOptions(options);
  if (options.resume !== undefined && !options.resume?.training) {
    throw new TypeError(
      'fit: resume holds no training state (pass the resumeState of a model loaded from a ' +
        'checkpoint saved with it, not with weights only)',
    );
  }
  const [train, validation] = splitPairs(
    tokenizePairs(model, pairs, options.unknown),
    options.validationSplit ?? 0.05,
    loop.seed,
  );
  if (train.length === 0) throw new RangeError('fit: no training pairs left after the split');
  const input: Seq2SeqTrainingInput = {
    spec: model.spec,
    sourceTokenizer: model.sourceTokenizer?.toJSON() ?? null,
    targetTokenizer: model.targetTokenizer?.toJSON() ?? null,
    params: Object.fromEntries(model.namedParameters().map(([name, p]) => [name, p.share()])),
    train,
    validation,
    options: loop,
    resume: options.resume ?? null,
  };
  if (options.signal?.aborted) return Promise.reject(abortError());
  return runTrainingWorker(workerScript(__filename, 'seq2seq-worker'), input, options);
}
