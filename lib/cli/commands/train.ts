// rnnkit train: a language model on a text file (default: the bundled Shakespeare).
import { writeFileAtomic } from '../../core/atomic';
import { LanguageModel } from '../../api/language-model';
import { checkPrecision } from '../../train/fit';
import {
  choice,
  checkOutputPath,
  common,
  unknownFlag,
  float,
  int,
  on,
  text,
  UsageError,
} from '../args';
import { command } from '../command';
import { lossCurveSvg } from '../progress';
import {
  DEFAULT_CORPUS,
  makeTokenizer,
  readCorpus,
  setThreads,
  tokenizerFlag,
  trainingFlags,
  trainingOptions,
  withProgress,
} from '../shared';

export const train = command({
  summary: 'train a language model on a text file (default: the bundled Shakespeare)',
  usage: 'rnnkit train [--data FILE] [options]',
  flags: {
    data: text(
      'FILE',
      'training text, UTF-8 (default: bundled tinyshakespeare.txt)',
      DEFAULT_CORPUS,
    ),
    tokenizer: tokenizerFlag(
      'char (default), word, bpe (byte-level BPE trained on the text) or\nspm:FILE (a SentencePiece .model file)',
    ),
    'max-vocab': int('N', 'word tokenizer vocabulary limit (default 10000)', { min: 2 }, 10000),
    unknown: unknownFlag(
      'map',
      'text outside the vocabulary (words beyond --max-vocab): train on <unk> in\nits place (map, the default) or fail (error)',
    ),
    'vocab-size': int(
      'N',
      'bpe vocabulary size, 256 bytes included (default 4000)',
      { min: 1 },
      4000,
    ),
    cell: choice(['lstm', 'gru', 'rnn'], '(default lstm)', 'lstm'),
    hidden: int('N', 'hidden size (default 512)', { min: 1 }, 512),
    layers: int('N', 'recurrent layers (default 1)', { min: 1 }, 1),
    embedding: int('N', 'embedding size (default 64)', { min: 1 }, 64),
    dropout: float(
      'P',
      'dropout on input, between layers and on output (default 0)',
      { min: 0, max: 1 },
      0,
    ),
    residual: on('residual connections between layers'),
    'seq-length': int('N', 'truncated-BPTT window (default 100)', { min: 1 }, 100),
    precision: choice(
      ['float32', 'bf16'],
      'matrix products in training: float32 (default), or bf16 (bfloat16\noperands, float32 sums and weights; needs a CPU with AVX512-BF16)',
      'float32',
    ),
    ...trainingFlags({ epochs: 4, batchSize: 32, validationSplit: 0.05, validateEvery: 200 }),
    seed: int('N', 'seed for initialisation and dropout (default 1)', { min: 0 }, 1),
    threads: common.threads,
    out: text(
      'FILE',
      'where to save the model (default model.safetensors);\na loss-curve SVG is written beside it',
      'model.safetensors',
    ),
    resume: text('FILE', 'continue training from a checkpoint saved by train'),
    init: text('FILE', "start from a saved model's weights (fine-tuning; fresh optimizer)"),
    'state-reset': float('P', 'chance a window starts from a zero state (default 0.05)', {
      min: 0,
      max: 1,
    }),
    half: on('save the weights as float16: half the file, implies --weights-only'),
    sample: int(
      'N',
      'characters of sample text to print at the end (default 300; 0: none)',
      { min: 0 },
      300,
    ),
  },
  async run(v) {
    setThreads(v.threads);
    const out = v.out;
    checkOutputPath(out);
    const precision = checkPrecision(v.precision);
    const corpus = readCorpus(v.data);
    let model: LanguageModel;
    let resume: LanguageModel['resumeState'] = null;
    const from = v.resume ?? v.init;
    if (from !== undefined) {
      model = await LanguageModel.load(from);
      if (v.resume !== undefined) {
        resume = model.resumeState;
        if (!resume) {
          throw new UsageError(
            `${v.resume} holds no training state to resume (it was saved with weights only); use --init to start from its weights`,
          );
        }
      }
    } else {
      model = new LanguageModel({
        tokenizer: await makeTokenizer(v.tokenizer, corpus, {
          maxVocab: v['max-vocab'],
          vocabSize: v['vocab-size'],
        }),
        cell: v.cell,
        hiddenSize: v.hidden,
        numLayers: v.layers,
        embeddingSize: v.embedding,
        dropout: v.dropout,
        residual: v.residual,
        seed: v.seed,
      });
    }
    process.stderr.write(
      `${model.summary()}\ntraining on ${v.data} (${corpus.length.toLocaleString('en-US')} characters)\n`,
    );
    const options = trainingOptions(v, out, 4);
    const history = await withProgress(options.timeLimit, (watch) =>
      model.fit(corpus, {
        ...options,
        ...watch,
        seqLength: v['seq-length'],
        seed: v.seed,
        resume: resume ?? undefined,
        stateResetRate: v['state-reset'],
        unknown: v.unknown,
        precision,
      }),
    );
    await model.save(out, {
      weightsOnly: v['weights-only'],
      dtype: v.half ? 'float16' : 'float32',
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
    if (v.sample > 0) {
      const prompt = corpus.slice(0, corpus.search(/\n/) + 1 || 1);
      const [generated] = await model.generate({
        prompts: [prompt],
        maxTokens: v.sample,
        temperature: 0.8,
        seed: 1,
        unknown: v.unknown,
      });
      process.stdout.write(`\n--- sample (temperature 0.8) ---\n${prompt}${generated}\n`);
    }
  },
});
