#!/usr/bin/env node
// The rnnkit command line: parses arguments and calls the library. Errors print one line and
// exit non-zero; RNNKIT_DEBUG=1 shows stack traces.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { ProgressPrinter, lossCurveSvg } from './progress';
import { writeFileAtomic } from '../core/atomic';
import { LanguageModel } from '../models/language-model';
import { native } from '../core/native';
import { exportOnnx } from '../onnx/export';
import { exportSeq2SeqOnnx } from '../onnx/seq2seq-export';
import { readSafetensors } from '../checkpoint/safetensors';
import {
  BpeTokenizer,
  CharTokenizer,
  SentencePieceTokenizer,
  WordTokenizer,
  validateCorpus,
  type Tokenizer,
} from '../text';
import type { CellType } from '../nn/recurrent';
import { Seq2Seq } from '../models/seq2seq';
import type { AttentionKind } from '../nn/attention';
import { bleuTokens, corpusBleu } from '../train/bleu';
import { datePairs } from '../text/dates';
import { splitPairs, type TextPair } from '../train/seq2seq-fit';
import { attentionHeatmapSvg } from '../decode/heatmap';
import { parsePairs } from '../text/pairs';
import { serveInWorker } from '../serve/thread';
import type { TranslateOptions } from '../decode/translate';
import type { LrSchedule, Progress } from '../train/loop';

const ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_CORPUS = path.join(ROOT, 'data', 'tinyshakespeare.txt');
export const DEFAULT_MODEL = path.join(ROOT, 'models', 'default.safetensors');

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs options: flags that take a value, then on/off switches. */
function flags(values: string[], switches: string[] = []): Options {
  return Object.fromEntries([
    ...values.map((name) => [name, { type: 'string' as const }]),
    ...switches.map((name) => [name, { type: 'boolean' as const }]),
  ]);
}

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<void>;
}

/** A command that parses its own arguments (--help included) and returns its exit code. */
interface RawCommand {
  summary: string;
  runRaw(args: string[]): Promise<number>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function num(v: unknown, name: string, kind: 'int' | 'float' = 'float'): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (
    typeof v !== 'string' ||
    v.trim() === '' ||
    !Number.isFinite(n) ||
    (kind === 'int' && !Number.isInteger(n))
  ) {
    throw new UsageError(
      `--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got '${String(v)}'`,
    );
  }
  return n;
}

function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

function readCorpus(file: string): string {
  return validateCorpus(readBytes(file), file);
}

interface TokenizerFlags {
  specials?: string[];
  maxVocab: number;
  vocabSize: number;
  lowercase?: boolean;
}

/** The tokenizer `--tokenizer KIND` asks for, built from `text` (spm:FILE loads FILE instead). */
async function makeTokenizer(kind: string, text: string, o: TokenizerFlags): Promise<Tokenizer> {
  const { specials, lowercase } = o;
  if (kind === 'char') return CharTokenizer.fromText(text, { specials });
  if (kind === 'word')
    return WordTokenizer.fromText(text, { specials, maxVocab: o.maxVocab, lowercase });
  if (kind === 'bpe') return BpeTokenizer.train(text, { specials, vocabSize: o.vocabSize });
  if (kind.startsWith('spm:') && kind.length > 4) return SentencePieceTokenizer.load(kind.slice(4));
  throw new UsageError(`--tokenizer must be 'char', 'word', 'bpe' or 'spm:FILE', got '${kind}'`);
}

function setThreads(v: unknown): void {
  const t = num(v, 'threads', 'int');
  if (t !== undefined) native.setThreads(t);
}

function checkOutputPath(out: string): void {
  const dir = path.dirname(path.resolve(out));
  if (!fs.existsSync(dir)) throw new UsageError(`the output folder ${dir} does not exist`);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) {
    throw new UsageError(`--out ${out} is a folder; give a file name`);
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`cannot write to the output folder ${dir}`);
  }
}

/** The model, inputs and decoding options that translate and attention share. */
async function seq2seqArgs(v: Record<string, unknown>) {
  const file = str(v.model);
  if (!file) throw new UsageError('needs --model FILE (a model saved by seq2seq train)');
  const inputs = (v.input as string[] | undefined) ?? [];
  if (inputs.length === 0) throw new UsageError('needs at least one --input TEXT');
  const unknown = str(v.unknown) ?? 'error';
  if (unknown !== 'error' && unknown !== 'map') {
    throw new UsageError(`--unknown must be error or map, got '${unknown}'`);
  }
  const model = await Seq2Seq.load(file);
  const options: TranslateOptions = {
    beam: num(v.beam, 'beam', 'int'),
    maxLength: num(v['max-length'], 'max-length', 'int'),
    lengthPenalty: num(v['length-penalty'], 'length-penalty'),
    unknown,
  };
  return { model, inputs, options };
}

/** Whether `file` (an .onnx name or a checkpoint) holds a sequence-to-sequence model. */
function cellOption(v: unknown): CellType {
  const cell = str(v) ?? 'lstm';
  if (cell !== 'lstm' && cell !== 'gru' && cell !== 'rnn') {
    throw new UsageError(`--cell must be lstm, gru or rnn, got '${cell}'`);
  }
  return cell;
}

/** The options both train commands read alike; `defaults` are each command's own. */
function trainingOptions(
  v: Record<string, unknown>,
  out: string,
  defaults: { epochs: number; batchSize: number; validationSplit: number; validateEvery: number },
) {
  const steps = num(v.steps, 'steps', 'int');
  const epochs =
    num(v.epochs, 'epochs', 'int') ?? (steps === undefined ? defaults.epochs : undefined);
  const checkpointEvery = num(v['checkpoint-every'], 'checkpoint-every', 'int');
  return {
    epochs,
    steps,
    timeLimit: num(v['time-limit'], 'time-limit') ?? 0,
    batchSize: num(v['batch-size'], 'batch-size', 'int') ?? defaults.batchSize,
    learningRate: num(v.lr, 'lr') ?? 3e-3,
    lrSchedule: (str(v['lr-schedule']) ?? 'cosine') as LrSchedule,
    validationSplit: num(v['validation-split'], 'validation-split') ?? defaults.validationSplit,
    validateEvery: num(v['validate-every'], 'validate-every', 'int') ?? defaults.validateEvery,
    checkpoint: checkpointEvery ? { path: out, every: checkpointEvery } : undefined,
  };
}

/** Runs a training with a progress bar on stderr; Ctrl-C stops it cleanly (the model is kept). */
async function withProgress<T>(
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

const commands: Record<string, Command | RawCommand> = {
  train: {
    summary: 'train a language model on a text file (default: the bundled Shakespeare)',
    usage: `rnnkit train [--data FILE] [options]

  --data FILE            training text, UTF-8 (default: bundled tinyshakespeare.txt)
  --tokenizer KIND       char (default), word, bpe (byte-level BPE trained on the text) or
                         spm:FILE (a SentencePiece .model file)
  --max-vocab N          word tokenizer vocabulary limit (default 10000)
  --vocab-size N         bpe vocabulary size, 256 bytes included (default 4000)
  --cell lstm|gru|rnn    (default lstm)
  --hidden N             hidden size (default 512)
  --layers N             recurrent layers (default 1)
  --embedding N          embedding size (default 64)
  --dropout P            dropout on input, between layers and on output (default 0)
  --residual             residual connections between layers
  --seq-length N         truncated-BPTT window (default 100)
  --batch-size N         parallel streams (default 32)
  --epochs N | --steps N how long to train (default: 4 epochs)
  --time-limit SECONDS   stop after this long (default: none)
  --lr RATE              learning rate (default 3e-3)
  --lr-schedule constant|cosine|linear (default cosine)
  --validation-split F   held-back tail for validation (default 0.05)
  --validate-every N     steps between validations (default 200)
  --seed N               seed for initialisation and dropout (default 1)
  --threads N            GEMM threads
  --out FILE             where to save the model (default model.safetensors);
                         a loss-curve SVG is written beside it
  --resume FILE          continue training from a checkpoint saved by train
  --init FILE            start from a saved model's weights (fine-tuning; fresh optimizer)
  --state-reset P        chance a window starts from a zero state (default 0.05)
  --checkpoint-every N   save a resumable checkpoint to --out every N steps
  --weights-only         save without the optimizer state (smaller; cannot be resumed)
  --half                 save the weights as float16: half the file, implies --weights-only
  --sample N             characters of sample text to print at the end (default 300; 0: none)`,
    options: flags(
      [
        'data',
        'tokenizer',
        'max-vocab',
        'vocab-size',
        'cell',
        'hidden',
        'layers',
        'embedding',
        'dropout',
        'seq-length',
        'batch-size',
        'epochs',
        'steps',
        'time-limit',
        'lr',
        'lr-schedule',
        'validation-split',
        'validate-every',
        'seed',
        'threads',
        'out',
        'resume',
        'init',
        'state-reset',
        'checkpoint-every',
        'sample',
      ],
      ['residual', 'weights-only', 'half'],
    ),
    async run(v) {
      setThreads(v.threads);
      const dataFile = str(v.data) ?? DEFAULT_CORPUS;
      const out = str(v.out) ?? 'model.safetensors';
      checkOutputPath(out);
      const text = readCorpus(dataFile);
      let model: LanguageModel;
      let resume: LanguageModel['resumeState'] = null;
      if (v.resume !== undefined || v.init !== undefined) {
        model = await LanguageModel.load(String(v.resume ?? v.init));
        if (v.resume !== undefined) {
          resume = model.resumeState;
          if (!resume) {
            throw new UsageError(
              `${String(v.resume)} holds no training state to resume (it was saved with weights only); use --init to start from its weights`,
            );
          }
        }
      } else {
        const cell = cellOption(v.cell);
        model = new LanguageModel({
          tokenizer: await makeTokenizer(str(v.tokenizer) ?? 'char', text, {
            maxVocab: num(v['max-vocab'], 'max-vocab', 'int') ?? 10000,
            vocabSize: num(v['vocab-size'], 'vocab-size', 'int') ?? 4000,
          }),
          cell,
          hiddenSize: num(v.hidden, 'hidden', 'int') ?? 512,
          numLayers: num(v.layers, 'layers', 'int') ?? 1,
          embeddingSize: num(v.embedding, 'embedding', 'int') ?? 64,
          dropout: num(v.dropout, 'dropout') ?? 0,
          residual: v.residual === true,
          seed: num(v.seed, 'seed', 'int') ?? 1,
        });
      }
      process.stderr.write(
        `${model.summary()}\ntraining on ${dataFile} (${text.length.toLocaleString('en-US')} characters)\n`,
      );
      const common = trainingOptions(v, out, {
        epochs: 4,
        batchSize: 32,
        validationSplit: 0.05,
        validateEvery: 200,
      });
      const history = await withProgress(common.timeLimit, (watch) =>
        model.fit(text, {
          ...common,
          ...watch,
          seqLength: num(v['seq-length'], 'seq-length', 'int') ?? 100,
          seed: num(v.seed, 'seed', 'int') ?? 1,
          resume: resume ?? undefined,
          stateResetRate: num(v['state-reset'], 'state-reset'),
        }),
      );
      await model.save(out, {
        weightsOnly: v['weights-only'] === true,
        dtype: v.half === true ? 'float16' : 'float32',
      });
      const svg = out.replace(/\.safetensors$/, '') + '.loss.svg';
      await writeFileAtomic(svg, lossCurveSvg(history, `${model.describe()}`));
      const val =
        history.bestValLoss === null
          ? ''
          : `, best validation loss ${history.bestValLoss.toFixed(4)}`;
      process.stdout.write(
        `trained ${history.steps} steps in ${history.seconds.toFixed(1)} s ` +
          `(${Math.round(history.tokensPerSec).toLocaleString('en-US')} tokens/s${val}; ${history.stopped})\n` +
          `saved ${out} and ${svg}\n`,
      );
      const sample = num(v.sample, 'sample', 'int') ?? 300;
      if (sample > 0) {
        const prompt = text.slice(0, text.search(/\n/) + 1 || 1);
        const [generated] = await model.generate({
          prompts: [prompt],
          maxTokens: sample,
          temperature: 0.8,
          seed: 1,
        });
        process.stdout.write(`\n--- sample (temperature 0.8) ---\n${prompt}${generated}\n`);
      }
    },
  },

  generate: {
    summary: 'generate text from a trained model (default: the bundled model)',
    usage: `rnnkit generate [--model FILE] [--prompt TEXT ...] [options]

  --model FILE           model saved by train (default: the bundled default model)
  --prompt TEXT          a prompt; repeat for several (all run as one batch)
  --n N                  samples per prompt (default 1)
  --max-tokens N         tokens to generate (default 200)
  --temperature T        0 = greedy (default 0.8)
  --top-k K              keep the K most likely tokens (default off)
  --top-p P              nucleus sampling (default off)
  --repetition-penalty R (default off)
  --stop TEXT            stop at this text; repeatable
  --seed N               sampling seed (default random)
  --stream               print the text as it is generated (one prompt)
  --unknown error|map    unknown prompt characters: fail (default) or map to <unk>
  --threads N            GEMM threads`,
    options: {
      ...flags(
        [
          'model',
          'n',
          'max-tokens',
          'temperature',
          'top-k',
          'top-p',
          'repetition-penalty',
          'seed',
          'unknown',
          'threads',
        ],
        ['stream'],
      ),
      prompt: { type: 'string', multiple: true },
      stop: { type: 'string', multiple: true },
    },
    async run(v) {
      setThreads(v.threads);
      const model = await LanguageModel.load(str(v.model) ?? DEFAULT_MODEL);
      const prompts = (v.prompt as string[] | undefined) ?? ['\n'];
      const n = num(v.n, 'n', 'int') ?? 1;
      if (n < 1) throw new UsageError(`--n must be at least 1, got ${n}`);
      const unknown = str(v.unknown) ?? 'error';
      if (unknown !== 'error' && unknown !== 'map')
        throw new UsageError(`--unknown must be error or map`);
      const options = {
        maxTokens: num(v['max-tokens'], 'max-tokens', 'int') ?? 200,
        temperature: num(v.temperature, 'temperature') ?? 0.8,
        topK: num(v['top-k'], 'top-k', 'int'),
        topP: num(v['top-p'], 'top-p'),
        repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty'),
        stop: v.stop as string[] | undefined,
        seed: num(v.seed, 'seed', 'int'),
        unknown: unknown as 'error' | 'map',
      };
      if (v.stream === true) {
        if (prompts.length !== 1 || n !== 1)
          throw new UsageError('--stream takes one --prompt and --n 1');
        process.stdout.write(prompts[0]);
        for await (const piece of model.stream({ prompt: prompts[0], ...options }))
          process.stdout.write(piece);
        process.stdout.write('\n');
        return;
      }
      const all = prompts.flatMap((p) => Array<string>(n).fill(p));
      const texts = await model.generate({ prompts: all, ...options });
      texts.forEach((t, i) => {
        if (all.length > 1) process.stdout.write(`--- sample ${i + 1} ---\n`);
        process.stdout.write(`${all[i]}${t}\n`);
      });
    },
  },

  evaluate: {
    summary: 'loss, perplexity and bits per token of a model on a text file',
    usage: `rnnkit evaluate --model FILE --data FILE [--seq-length N]`,
    options: flags(['model', 'data', 'seq-length', 'threads']),
    async run(v) {
      setThreads(v.threads);
      const modelFile = str(v.model);
      const dataFile = str(v.data);
      if (!modelFile || !dataFile)
        throw new UsageError('evaluate needs --model FILE and --data FILE');
      const model = await LanguageModel.load(modelFile);
      const r = model.evaluate(readCorpus(dataFile), {
        seqLength: num(v['seq-length'], 'seq-length', 'int'),
      });
      process.stdout.write(
        `loss ${r.loss.toFixed(4)} nats/token, perplexity ${r.perplexity.toFixed(3)}, ` +
          `${r.bitsPerToken.toFixed(4)} bits/token over ${r.tokens.toLocaleString('en-US')} tokens\n`,
      );
    },
  },

  'seq2seq train': {
    summary: 'train a sequence-to-sequence model with attention on a pairs file or the dates task',
    usage: `rnnkit seq2seq train (--pairs FILE.tsv | --task dates) [options]

  --pairs FILE           tab-separated pairs, UTF-8, one a line (blank lines skipped)
  --source-column N      1-based column of the source (default 1)
  --target-column N      1-based column of the target (default 2)
  --task dates           generate the date-normalisation task instead ("27 Nov 2026" -> 2026-11-27)
  --examples N           dates: generated training pairs (default 50000)
  --tokenizer KIND       char (default), word (lowercased), bpe (byte-level BPE trained on each
                         side) or spm:FILE (one SentencePiece .model for both sides)
  --max-vocab N          word vocabulary limit per side (default 8000)
  --vocab-size N         bpe vocabulary size per side, 256 bytes included (default 4000)
  --cell lstm|gru|rnn    (default lstm)
  --hidden N             decoder hidden size (default 128)
  --encoder-hidden N     encoder hidden size per direction (default hidden/2)
  --unidirectional       read the source left to right only
  --input-feeding        feed each attentional state into the next decoder step
  --encoder-layers N     (default 1)
  --decoder-layers N     (default 1)
  --embedding N          embedding size (default 64)
  --attention dot|general|additive (default general)
  --dropout P            dropout between stacked layers (default 0)
  --batch-size N         pairs per step (default 64)
  --epochs N | --steps N how long to train (default: 10 epochs)
  --time-limit SECONDS   stop after this long (default: none)
  --lr RATE              learning rate (default 3e-3)
  --lr-schedule constant|cosine|linear (default cosine)
  --label-smoothing E    (default 0.1)
  --scheduled-sampling P chance that a decoder input is the model's own prediction (default 0)
  --scheduled-sampling-ramp N  raise that chance linearly from 0 over the first N steps
  --validation-split F   shuffled share held back for validation loss (default 0.02)
  --validate-every N     steps between validations (default 500)
  --test-size N          held-out pairs to score at the end (default 2000)
  --beam N               also score beam search of this size on the test pairs (default 5)
  --seed N               (default 1)
  --threads N            GEMM threads
  --out FILE             where to save the model (default seq2seq.safetensors)
  --checkpoint-every N   save a resumable checkpoint to --out every N steps
  --resume FILE          continue the run a checkpoint saved, exactly (give the same data, seed
                         and batch size; the architecture and vocabularies come from FILE)
  --weights-only         save without the optimizer state (smaller; cannot be resumed)`,
    options: flags(
      [
        'pairs',
        'source-column',
        'target-column',
        'task',
        'examples',
        'tokenizer',
        'max-vocab',
        'vocab-size',
        'cell',
        'hidden',
        'encoder-hidden',
        'encoder-layers',
        'decoder-layers',
        'embedding',
        'attention',
        'dropout',
        'batch-size',
        'epochs',
        'steps',
        'time-limit',
        'lr',
        'lr-schedule',
        'label-smoothing',
        'scheduled-sampling',
        'scheduled-sampling-ramp',
        'validation-split',
        'validate-every',
        'test-size',
        'beam',
        'seed',
        'threads',
        'out',
        'checkpoint-every',
        'resume',
      ],
      ['unidirectional', 'input-feeding', 'weights-only'],
    ),
    async run(v) {
      setThreads(v.threads);
      const out = str(v.out) ?? 'seq2seq.safetensors';
      checkOutputPath(out);
      const seed = num(v.seed, 'seed', 'int') ?? 1;
      const testSize = num(v['test-size'], 'test-size', 'int') ?? 2000;
      let train: TextPair[];
      let test: TextPair[];
      if (v.task !== undefined) {
        if (v.task !== 'dates')
          throw new UsageError(`--task must be 'dates', got '${String(v.task)}'`);
        if (v.pairs !== undefined) throw new UsageError('give --pairs or --task, not both');
        train = datePairs(num(v.examples, 'examples', 'int') ?? 50000, seed);
        test = datePairs(testSize, seed + 1_000_003);
      } else {
        const file = str(v.pairs);
        if (!file) throw new UsageError('seq2seq train needs --pairs FILE.tsv or --task dates');
        const column = (name: string, fallback: number) => {
          const c = num(v[name], name, 'int') ?? fallback;
          if (c < 1) throw new UsageError(`--${name} counts from 1, got ${c}`);
          return c - 1;
        };
        const all = parsePairs(readBytes(file), file, {
          sourceColumn: column('source-column', 1),
          targetColumn: column('target-column', 2),
        });
        if (testSize >= all.length) {
          throw new UsageError(`--test-size ${testSize} leaves no training pairs of ${all.length}`);
        }
        [train, test] = splitPairs(all, testSize / all.length, seed);
      }
      const vocab = (texts: string[], specials: string[]) =>
        makeTokenizer(str(v.tokenizer) ?? 'char', texts.join('\n'), {
          specials,
          maxVocab: num(v['max-vocab'], 'max-vocab', 'int') ?? 8000,
          vocabSize: num(v['vocab-size'], 'vocab-size', 'int') ?? 4000,
          lowercase: true,
        });
      let model: Seq2Seq;
      if (v.resume !== undefined) {
        model = await Seq2Seq.load(String(v.resume));
        if (!model.resumeState) {
          throw new UsageError(
            `${String(v.resume)} holds no training state to resume (it was saved with weights only)`,
          );
        }
      } else {
        const cell = cellOption(v.cell);
        model = new Seq2Seq({
          sourceTokenizer: await vocab(
            train.map((p) => p.source),
            [],
          ),
          targetTokenizer: await vocab(
            train.map((p) => p.target),
            ['<pad>', '<bos>', '<eos>'],
          ),
          cell,
          hiddenSize: num(v.hidden, 'hidden', 'int') ?? 128,
          encoderHiddenSize: num(v['encoder-hidden'], 'encoder-hidden', 'int'),
          bidirectional: v.unidirectional !== true,
          inputFeeding: v['input-feeding'] === true,
          encoderLayers: num(v['encoder-layers'], 'encoder-layers', 'int') ?? 1,
          decoderLayers: num(v['decoder-layers'], 'decoder-layers', 'int') ?? 1,
          embeddingSize: num(v.embedding, 'embedding', 'int') ?? 64,
          attention: (str(v.attention) ?? 'general') as AttentionKind,
          dropout: num(v.dropout, 'dropout') ?? 0,
          seed,
        });
      }
      process.stderr.write(
        `${model.summary()}\ntraining on ${train.length.toLocaleString('en-US')} pairs, ` +
          `testing on ${test.length.toLocaleString('en-US')}\n`,
      );
      const common = trainingOptions(v, out, {
        epochs: 10,
        batchSize: 64,
        validationSplit: 0.02,
        validateEvery: 500,
      });
      const history = await withProgress(common.timeLimit, (watch) =>
        model.fit(train, {
          ...common,
          ...watch,
          labelSmoothing: num(v['label-smoothing'], 'label-smoothing') ?? 0.1,
          scheduledSampling: {
            rate: num(v['scheduled-sampling'], 'scheduled-sampling') ?? 0,
            rampSteps: num(v['scheduled-sampling-ramp'], 'scheduled-sampling-ramp', 'int') ?? 0,
          },
          seed,
          resume: model.resumeState ?? undefined,
          // Words cut by --max-vocab train as <unk>; characters are all in the vocabulary.
          unknown: 'map',
        }),
      );
      await model.save(out, { weightsOnly: v['weights-only'] === true });
      process.stdout.write(
        `trained ${history.steps} steps in ${history.seconds.toFixed(1)} s ` +
          `(${Math.round(history.tokensPerSec).toLocaleString('en-US')} target tokens/s; ${history.stopped})\n` +
          `saved ${out}\n`,
      );
      const beam = num(v.beam, 'beam', 'int') ?? 5;
      // Word vocabularies are lowercased, so their output is compared with lowercased targets.
      const lower = model.targetTokenizer?.kind === 'word';
      const normalise = (text: string) => (lower ? text.toLowerCase() : text);
      for (const b of beam > 1 ? [1, beam] : [1]) {
        const started = performance.now();
        const got = await model.translate(
          test.map((p) => p.source),
          { beam: b, unknown: 'map' },
        );
        const seconds = (performance.now() - started) / 1000;
        const exact =
          got.filter((t, i) => normalise(t.text) === normalise(test[i].target)).length /
          test.length;
        const bleu = corpusBleu(
          got.map((t) => bleuTokens(normalise(t.text))),
          test.map((p) => bleuTokens(normalise(p.target))),
        );
        process.stdout.write(
          `${b === 1 ? 'greedy' : `beam ${b}`}: exact match ${(100 * exact).toFixed(2)}%, ` +
            `BLEU ${bleu.bleu.toFixed(2)} on ${test.length} held-out pairs (${seconds.toFixed(1)} s)\n`,
        );
      }
    },
  },

  translate: {
    summary: 'translate text with a seq2seq model (greedy or beam search)',
    usage: `rnnkit translate --model FILE --input TEXT [--input TEXT ...] [options]

  --model FILE           a model saved by seq2seq train
  --input TEXT           a source text; repeat for several (decoded as one batch)
  --beam N               beam size (default 1: greedy)
  --n-best N             hypotheses to print per source (default 1)
  --max-length N         output tokens at most (default 2 * source length + 10)
  --length-penalty A     GNMT alpha (default 0.6 with --beam > 1)
  --temperature T        sample each token (with --beam 1) at this temperature (default 0: greedy)
  --top-k K              sample among the K most likely tokens (default off)
  --top-p P              nucleus sampling (default off)
  --seed N               sampling seed (default 0)
  --unknown error|map    source text outside the vocabulary: fail (default) or map to <unk>
  --threads N            GEMM threads`,
    options: {
      ...flags([
        'model',
        'beam',
        'temperature',
        'top-k',
        'top-p',
        'seed',
        'n-best',
        'max-length',
        'length-penalty',
        'unknown',
        'threads',
      ]),
      input: { type: 'string', multiple: true },
    },
    async run(v) {
      setThreads(v.threads);
      const { model, inputs, options } = await seq2seqArgs(v);
      const nBest = num(v['n-best'], 'n-best', 'int') ?? 1;
      const results = await model.translate(inputs, {
        ...options,
        nBest,
        temperature: num(v.temperature, 'temperature'),
        topK: num(v['top-k'], 'top-k', 'int'),
        topP: num(v['top-p'], 'top-p'),
        seed: num(v.seed, 'seed', 'int'),
      });
      for (const t of results) {
        if (nBest === 1) {
          process.stdout.write(`${t.text}\n`);
          continue;
        }
        process.stdout.write(`${t.source}\n`);
        t.hypotheses.forEach((h, k) =>
          process.stdout.write(`  ${k + 1}. ${h.text}  (score ${h.score.toFixed(4)})\n`),
        );
      }
    },
  },

  attention: {
    summary: "draw a seq2seq model's attention for one input as an SVG heatmap",
    usage: `rnnkit attention --model FILE --input TEXT --out FILE.svg [--beam N]`,
    options: {
      ...flags(['model', 'out', 'beam', 'unknown', 'threads']),
      input: { type: 'string', multiple: true },
    },
    async run(v) {
      setThreads(v.threads);
      const out = str(v.out);
      if (!out) throw new UsageError('attention needs --out FILE.svg');
      checkOutputPath(out);
      const { model, inputs, options } = await seq2seqArgs(v);
      if (inputs.length !== 1) throw new UsageError('attention takes exactly one --input');
      const [t] = await model.translate(inputs, options);
      const best = t.hypotheses[0];
      await writeFileAtomic(
        out,
        attentionHeatmapSvg(
          t.sourceTokens,
          best.tokens,
          best.attention,
          `${t.source} -> ${t.text}`,
        ),
      );
      process.stdout.write(`${t.text}\nsaved ${out}\n`);
    },
  },

  export: {
    summary: 'export a trained model to ONNX, for onnxruntime in Node, Python or elsewhere',
    usage: `rnnkit export --model FILE --out FILE.onnx [--kind step|sequence] [--opset N]

  --model FILE           a model saved by train or seq2seq train (.safetensors)
  --out FILE             the .onnx file to write; replaced atomically. A sequence-to-sequence
                         model is written as two files beside it, FILE.encoder.onnx and
                         FILE.decoder.onnx (the encoder and the decoder step)
  --kind step|sequence   language models: sequence (default): tokens [time, batch], primes a
                         prompt in one call and runs single steps with time = 1; step: tokens
                         [1, batch], for runtimes that want a fixed shape
  --opset N              ONNX opset, 14 to 17 (default 17)

The vocabulary and the model config travel in the file's metadata, so the .onnx file alone is
enough to generate (OnnxGenerator), and the two files of a sequence-to-sequence model to
translate (OnnxSeq2Seq). See docs/onnx.md for their inputs and outputs.`,
    options: flags(['model', 'out', 'kind', 'opset']),
    async run(v) {
      const modelFile = str(v.model);
      const out = str(v.out);
      if (!modelFile || !out) throw new UsageError('export needs --model FILE and --out FILE.onnx');
      const kind = str(v.kind) ?? 'sequence';
      if (kind !== 'step' && kind !== 'sequence') {
        throw new UsageError(`--kind must be step or sequence, got '${kind}'`);
      }
      const opset = num(v.opset, 'opset', 'int') ?? 17;
      if (opset < 14 || opset > 17) throw new UsageError(`--opset must be 14 to 17, got ${opset}`);
      checkOutputPath(out);
      const mib = (files: string[]) =>
        (files.reduce((n, f) => n + fs.statSync(f).size, 0) / 2 ** 20).toFixed(1);
      if ((await readSafetensors(modelFile)).metadata.kind === 'seq2seq') {
        if (v.kind !== undefined) {
          throw new UsageError(
            '--kind is for language models; a sequence-to-sequence model is exported as its ' +
              'encoder and its decoder step',
          );
        }
        const model = await Seq2Seq.load(modelFile);
        const files = await exportSeq2SeqOnnx(model, out, { opset });
        process.stdout.write(
          `exported ${model.describe()} to ${files.encoder} and ${files.decoder} ` +
            `(opset ${opset}, ${mib([files.encoder, files.decoder])} MiB)\n`,
        );
        return;
      }
      const model = await LanguageModel.load(modelFile);
      await exportOnnx(model, out, { kind, opset });
      const size = mib([out]);
      process.stdout.write(
        `exported ${model.describe()} to ${out} (${kind} model, opset ${opset}, ${size} MiB)\n`,
      );
    },
  },

  serve: {
    summary: 'serve a model over HTTP, concurrent requests batched together',
    usage: `rnnkit serve --model FILE [options]

  --model FILE           an exported .onnx file (run by onnxruntime) or a model saved by train
                         or seq2seq train (.safetensors, run by the native kernels); for a
                         sequence-to-sequence export, the name given to export (X.onnx for
                         X.encoder.onnx and X.decoder.onnx)
  --port N               port to listen on (default 8080; 0 picks a free one)
  --host ADDR            interface to listen on (default 127.0.0.1)
  --max-batch N          language models: prompts generated together, step by step (default 64)
  --max-queue N          language models: prompts waiting for a batch slot; beyond it requests
                         get 429 (default 1024)
  --threads N            compute threads (default: all cores but one, which the event loop and
                         HTTP keep to themselves)

POST /v1/generate (JSON, or Server-Sent Events with "stream": true) for a language model,
POST /v1/translate for a sequence-to-sequence model, GET /health, GET /v1/model,
GET /metrics (Prometheus). SIGTERM or SIGINT drains: requests in flight finish, new ones get 503.
See docs/serving.md.`,
    options: flags(['model', 'port', 'host', 'max-batch', 'max-queue', 'threads']),
    async run(v) {
      const file = str(v.model);
      if (!file) throw new UsageError('serve needs --model FILE (.onnx or .safetensors)');
      const serving = await serveInWorker({
        file,
        port: num(v.port, 'port', 'int'),
        host: str(v.host),
        maxBatch: num(v['max-batch'], 'max-batch', 'int'),
        maxQueue: num(v['max-queue'], 'max-queue', 'int'),
        threads: num(v.threads, 'threads', 'int') ?? Math.max(1, os.availableParallelism() - 1),
      });
      process.stdout.write(`rnnkit serve: ${file} (${serving.engine}) on ${serving.url}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      process.stdout.write('rnnkit serve: draining\n');
      await serving.close();
    },
  },

  bench: {
    summary: 'benchmark rnnkit beside PyTorch and onnxruntime (the harness of npm run bench)',
    async runRaw(args) {
      const file = path.join(ROOT, 'bench', 'run.mjs');
      if (!fs.existsSync(file)) throw new Error(`the benchmark harness ${file} is missing`);
      const bench = (await import(pathToFileURL(file).href)) as {
        main(argv: string[]): Promise<number>;
      };
      return bench.main(args);
    },
  },

  info: {
    summary: 'what the native addon was built with',
    usage: 'rnnkit info',
    options: {},
    async run() {
      const i = native.info();
      const blas = i.gemm === 'openblas' ? `OpenBLAS (${i.blasCore} kernels)` : 'none';
      process.stdout.write(
        `rnnkit ${i.version}\nBLAS: ${blas}; built-in GEMM: ${i.builtinVectorBits}-bit vectors\n` +
          `GEMM for products of 16+ rows: ${i.products === 'openblas' ? 'OpenBLAS' : 'built-in'}, ` +
          `${i.threads} thread(s)\nCUDA: ${i.cuda ? 'compiled' : 'not compiled'}\nNode ${process.version}\n`,
      );
    },
  },
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: rnnkit <command> [options]   (rnnkit <command> --help for its options)',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // Two-word commands ("seq2seq train") are entries whose name holds a space.
  const twoWords = argv.length > 1 && `${argv[0]} ${argv[1]}` in commands;
  const [name, ...rest] = twoWords ? [`${argv[0]} ${argv[1]}`, ...argv.slice(2)] : argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`rnnkit: unknown command '${name}'\n\n${help()}\n`);
    return 1;
  }
  if ('runRaw' in command) return command.runRaw(rest);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.usage + '\n');
    return 0;
  }
  try {
    const { values } = parseArgs({
      args: rest,
      options: command.options,
      strict: true,
      allowPositionals: false,
    });
    await command.run(values);
    return 0;
  } catch (error) {
    const e = error as Error & { code?: string };
    if (process.env.RNNKIT_DEBUG) process.stderr.write(`${e.stack}\n`);
    const usage = e instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`rnnkit ${name}: ${e.message}${usage ? `\n\n${command.usage}` : ''}\n`);
    return usage ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`rnnkit: ${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
