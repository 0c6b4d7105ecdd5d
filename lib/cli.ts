#!/usr/bin/env node
// The rnnkit command line: parses arguments and calls the library. Errors print one line and
// exit non-zero; RNNKIT_DEBUG=1 shows stack traces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { ProgressPrinter, lossCurveSvg } from './cli/progress';
import { writeFileAtomic } from './io/atomic';
import { LanguageModel } from './models/language-model';
import { native } from './native';
import { CharTokenizer, WordTokenizer, validateCorpus, type Tokenizer } from './text';
import type { CellType } from './nn/recurrent';

const ROOT = path.resolve(__dirname, '..');
export const DEFAULT_CORPUS = path.join(ROOT, 'data', 'tinyshakespeare.txt');
export const DEFAULT_MODEL = path.join(ROOT, 'models', 'default.safetensors');

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<void>;
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

function readCorpus(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  return validateCorpus(bytes, file);
}

function makeTokenizer(kind: string, text: string, maxVocab?: number): Tokenizer {
  if (kind === 'char') return CharTokenizer.fromText(text);
  if (kind === 'word') return WordTokenizer.fromText(text, { maxVocab: maxVocab ?? 10000 });
  throw new UsageError(`--tokenizer must be 'char' or 'word', got '${kind}'`);
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

const commands: Record<string, Command> = {
  train: {
    summary: 'train a language model on a text file (default: the bundled Shakespeare)',
    usage: `rnnkit train [--data FILE] [options]

  --data FILE            training text, UTF-8 (default: bundled tinyshakespeare.txt)
  --tokenizer char|word  (default char)
  --max-vocab N          word tokenizer vocabulary limit (default 10000)
  --cell lstm|gru|rnn    (default lstm)
  --hidden N             hidden size (default 512)
  --layers N             recurrent layers (default 1)
  --embedding N          embedding size (default 64)
  --dropout P            dropout between layers (default 0)
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
  --checkpoint-every N   save a resumable checkpoint to --out every N steps
  --weights-only         save without the optimizer state (smaller; cannot be resumed)
  --sample N             characters of sample text to print at the end (default 300; 0: none)`,
    options: {
      data: { type: 'string' },
      tokenizer: { type: 'string' },
      'max-vocab': { type: 'string' },
      cell: { type: 'string' },
      hidden: { type: 'string' },
      layers: { type: 'string' },
      embedding: { type: 'string' },
      dropout: { type: 'string' },
      residual: { type: 'boolean' },
      'seq-length': { type: 'string' },
      'batch-size': { type: 'string' },
      epochs: { type: 'string' },
      steps: { type: 'string' },
      'time-limit': { type: 'string' },
      lr: { type: 'string' },
      'lr-schedule': { type: 'string' },
      'validation-split': { type: 'string' },
      'validate-every': { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      sample: { type: 'string' },
      'weights-only': { type: 'boolean' },
    },
    async run(v) {
      setThreads(v.threads);
      const dataFile = str(v.data) ?? DEFAULT_CORPUS;
      const out = str(v.out) ?? 'model.safetensors';
      checkOutputPath(out);
      const text = readCorpus(dataFile);
      let model: LanguageModel;
      if (v.resume !== undefined) {
        model = await LanguageModel.load(String(v.resume));
        if (!model.resumeState) {
          throw new UsageError(
            `${String(v.resume)} holds no training state to resume (it was saved with weights only)`,
          );
        }
      } else {
        const cell = str(v.cell) ?? 'lstm';
        if (!['lstm', 'gru', 'rnn'].includes(cell)) {
          throw new UsageError(`--cell must be lstm, gru or rnn, got '${cell}'`);
        }
        model = new LanguageModel({
          tokenizer: makeTokenizer(
            str(v.tokenizer) ?? 'char',
            text,
            num(v['max-vocab'], 'max-vocab', 'int'),
          ),
          cell: cell as CellType,
          hiddenSize: num(v.hidden, 'hidden', 'int') ?? 512,
          numLayers: num(v.layers, 'layers', 'int') ?? 1,
          embeddingSize: num(v.embedding, 'embedding', 'int') ?? 64,
          dropout: num(v.dropout, 'dropout') ?? 0,
          residual: v.residual === true,
          seed: num(v.seed, 'seed', 'int') ?? 1,
        });
      }
      const epochs = num(v.epochs, 'epochs', 'int');
      const steps = num(v.steps, 'steps', 'int');
      const timeLimit = num(v['time-limit'], 'time-limit') ?? 0;
      process.stderr.write(
        `${model.summary()}\ntraining on ${dataFile} (${text.length.toLocaleString('en-US')} characters)\n`,
      );
      const printer = new ProgressPrinter(process.stderr, timeLimit);
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      const checkpointEvery = num(v['checkpoint-every'], 'checkpoint-every', 'int');
      const history = await model.fit(text, {
        epochs: epochs ?? (steps === undefined ? 4 : undefined),
        steps,
        timeLimit,
        batchSize: num(v['batch-size'], 'batch-size', 'int') ?? 32,
        seqLength: num(v['seq-length'], 'seq-length', 'int') ?? 100,
        learningRate: num(v.lr, 'lr') ?? 3e-3,
        lrSchedule: (str(v['lr-schedule']) ?? 'cosine') as 'constant' | 'cosine' | 'linear',
        validationSplit: num(v['validation-split'], 'validation-split') ?? 0.05,
        validateEvery: num(v['validate-every'], 'validate-every', 'int') ?? 200,
        seed: num(v.seed, 'seed', 'int') ?? 1,
        checkpoint: checkpointEvery ? { path: out, every: checkpointEvery } : undefined,
        resume: model.resumeState ?? undefined,
        onProgress: (p) => printer.update(p),
        signal: abort.signal,
      });
      process.off('SIGINT', onSignal);
      printer.end();
      await model.save(out, { weightsOnly: v['weights-only'] === true });
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
      model: { type: 'string' },
      prompt: { type: 'string', multiple: true },
      n: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      stop: { type: 'string', multiple: true },
      seed: { type: 'string' },
      stream: { type: 'boolean' },
      unknown: { type: 'string' },
      threads: { type: 'string' },
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
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      'seq-length': { type: 'string' },
      threads: { type: 'string' },
    },
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

  info: {
    summary: 'what the native addon was built with',
    usage: 'rnnkit info',
    options: {},
    async run() {
      const i = native.info();
      process.stdout.write(
        `rnnkit ${i.version}\nGEMM: ${i.gemm === 'openblas' ? 'OpenBLAS' : 'built-in portable GEMM'}, ${i.threads} thread(s)\n` +
          `CUDA: ${i.cuda ? 'compiled' : 'not compiled'}\nNode ${process.version}\n`,
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
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`rnnkit: unknown command '${name}'\n\n${help()}\n`);
    return 1;
  }
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
