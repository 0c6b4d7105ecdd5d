// What several commands share: the bundled files, reading a corpus, the GEMM threads, the
// tokenizers they build, and the training flags and progress display of both train commands.
import * as path from 'node:path';

import { native } from '../core/native';
import {
  BpeTokenizer,
  CharTokenizer,
  SentencePieceTokenizer,
  WordTokenizer,
  validateCorpus,
  type Tokenizer,
} from '../text';
import type { LrSchedule, Progress } from '../train/loop';
import { choice, float, int, on, readBytes, text, UsageError, type Flag } from './args';
import { ProgressPrinter } from './progress';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_CORPUS = path.join(ROOT, 'data', 'tinyshakespeare.txt');
export const DEFAULT_MODEL = path.join(ROOT, 'models', 'default.safetensors');

export function readCorpus(file: string): string {
  return validateCorpus(readBytes(file), file);
}

export function setThreads(threads: number | undefined): void {
  if (threads !== undefined) native.setThreads(threads);
}

/** What --tokenizer asks for: a kind trained on the text, or a SentencePiece model file. */
export type TokenizerChoice = { kind: 'char' | 'word' | 'bpe' } | { kind: 'spm'; file: string };

function tokenizerChoice(s: string, name: string): TokenizerChoice {
  if (s === 'char' || s === 'word' || s === 'bpe') return { kind: s };
  if (s.startsWith('spm:') && s.length > 4) return { kind: 'spm', file: s.slice(4) };
  throw new UsageError(`--${name} must be char, word, bpe or spm:FILE, got '${s}'`);
}

/** --tokenizer KIND, checked as it is parsed (spm:FILE cannot be a choice flag's choice). */
export function tokenizerFlag(help: string): Flag<TokenizerChoice> {
  const f = text('KIND', help, 'char');
  return { ...f, read: (raw, name) => tokenizerChoice(f.read(raw, name), name) };
}

/** The tokenizer `choice` asks for, built from `corpus` (spm:FILE loads FILE instead). */
export async function makeTokenizer(
  choice: TokenizerChoice,
  corpus: string,
  options: { maxVocab: number; vocabSize: number; specials?: string[]; lowercase?: boolean },
): Promise<Tokenizer> {
  const { specials, maxVocab, lowercase } = options;
  switch (choice.kind) {
    case 'char':
      return CharTokenizer.fromText(corpus, { specials });
    case 'word':
      return WordTokenizer.fromText(corpus, { specials, maxVocab, lowercase });
    case 'bpe':
      return BpeTokenizer.train(corpus, { specials, vocabSize: options.vocabSize });
    case 'spm':
      return SentencePieceTokenizer.load(choice.file);
  }
}

/** The training flags both train commands take; `d` holds each command's own defaults. */
export function trainingFlags(d: {
  epochs: number;
  batchSize: number;
  validationSplit: number;
  validateEvery: number;
}) {
  return {
    'batch-size': int(
      'N',
      `parallel streams or pairs per step (default ${d.batchSize})`,
      { min: 1 },
      d.batchSize,
    ),
    epochs: int('N', `how long to train (default: ${d.epochs} epochs)`, { min: 1 }),
    steps: int('N', 'how long to train, in steps (instead of --epochs)', { min: 1 }),
    'time-limit': float('SECONDS', 'stop after this long (default: none)', { min: 0 }, 0),
    lr: float('RATE', 'learning rate (default 3e-3)', { min: 0 }, 3e-3),
    'lr-schedule': choice(
      ['constant', 'cosine', 'linear'] satisfies LrSchedule[],
      'learning-rate schedule (default cosine)',
      'cosine',
    ),
    'validation-split': float(
      'F',
      `share held back for validation (default ${d.validationSplit})`,
      { min: 0, max: 0.9 },
      d.validationSplit,
    ),
    'validate-every': int(
      'N',
      `steps between validations (default ${d.validateEvery})`,
      { min: 1 },
      d.validateEvery,
    ),
    'checkpoint-every': int('N', 'save a resumable checkpoint to --out every N steps', { min: 1 }),
    'weights-only': on('save without the optimizer state (smaller; cannot be resumed)'),
  };
}

/** The fit options the training flags give; the default epochs only without --steps. */
export function trainingOptions(
  v: {
    'batch-size': number;
    epochs: number | undefined;
    steps: number | undefined;
    'time-limit': number;
    lr: number;
    'lr-schedule': LrSchedule;
    'validation-split': number;
    'validate-every': number;
    'checkpoint-every': number | undefined;
  },
  out: string,
  defaultEpochs: number,
) {
  return {
    epochs: v.epochs ?? (v.steps === undefined ? defaultEpochs : undefined),
    steps: v.steps,
    timeLimit: v['time-limit'],
    batchSize: v['batch-size'],
    learningRate: v.lr,
    lrSchedule: v['lr-schedule'],
    validationSplit: v['validation-split'],
    validateEvery: v['validate-every'],
    checkpoint: v['checkpoint-every'] ? { path: out, every: v['checkpoint-every'] } : undefined,
  };
}

/** Runs a training with a progress bar on stderr; Ctrl-C stops it cleanly (the model is kept). */
export async function withProgress<T>(
  timeLimit: number,
  train: (watch: { onProgress: (p: Progress) => void; signal: AbortSignal }) => Promise<T>,
): Promise<T> {
  const printer = new ProgressPrinter(process.stderr, timeLimit);
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    return await train({ onProgress: (p) => printer.update(p), signal: abort.signal });
  } finally {
    process.off('SIGINT', onSignal);
    printer.end();
  }
}
