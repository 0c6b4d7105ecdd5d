// rnnkit seq2seq train: a sequence-to-sequence model with attention, on a pairs file or the
// dates task, scored at the end on held-out pairs.
import { Seq2Seq } from '../../api/seq2seq';
import { scoreTranslations } from '../../decode/score';
import { datePairs } from '../../text/dates';
import { parsePairs, type TextPair } from '../../text/pairs';
import { splitPairs } from '../../train/seq2seq-fit';
import {
  checkOutputPath,
  choice,
  common,
  float,
  int,
  on,
  readBytes,
  text,
  UsageError,
} from '../args';
import { command } from '../command';
import {
  makeTokenizer,
  setThreads,
  tokenizerFlag,
  trainingFlags,
  trainingOptions,
  withProgress,
} from '../shared';

export const seq2seqTrain = command({
  summary: 'train a sequence-to-sequence model with attention on a pairs file or the dates task',
  usage: 'rnnkit seq2seq train (--pairs FILE.tsv | --task dates) [options]',
  flags: {
    pairs: text('FILE', 'tab-separated pairs, UTF-8, one a line (blank lines skipped)'),
    'source-column': int('N', '1-based column of the source (default 1)', { min: 1 }, 1),
    'target-column': int('N', '1-based column of the target (default 2)', { min: 1 }, 2),
    task: choice(
      ['dates'],
      'generate the date-normalisation task instead ("27 Nov 2026" -> 2026-11-27)',
    ),
    examples: int('N', 'dates: generated training pairs (default 50000)', { min: 1 }, 50000),
    tokenizer: tokenizerFlag(
      'char (default), word (lowercased), bpe (byte-level BPE trained on each\nside) or spm:FILE (one SentencePiece .model for both sides)',
    ),
    'max-vocab': int('N', 'word vocabulary limit per side (default 8000)', { min: 2 }, 8000),
    'vocab-size': int(
      'N',
      'bpe vocabulary size per side, 256 bytes included (default 4000)',
      { min: 1 },
      4000,
    ),
    cell: choice(['lstm', 'gru', 'rnn'], '(default lstm)', 'lstm'),
    hidden: int('N', 'decoder hidden size (default 128)', { min: 1 }, 128),
    'encoder-hidden': int('N', 'encoder hidden size per direction (default hidden/2)', { min: 1 }),
    unidirectional: on('read the source left to right only'),
    'input-feeding': on('feed each attentional state into the next decoder step'),
    'encoder-layers': int('N', '(default 1)', { min: 1 }, 1),
    'decoder-layers': int('N', '(default 1)', { min: 1 }, 1),
    embedding: int('N', 'embedding size (default 64)', { min: 1 }, 64),
    attention: choice(['dot', 'general', 'additive'], '(default general)', 'general'),
    dropout: float('P', 'dropout between stacked layers (default 0)', { min: 0, max: 1 }, 0),
    ...trainingFlags({ epochs: 10, batchSize: 64, validationSplit: 0.02, validateEvery: 500 }),
    'label-smoothing': float('E', '(default 0.1)', { min: 0, max: 1 }, 0.1),
    'scheduled-sampling': float(
      'P',
      "chance that a decoder input is the model's own prediction (default 0)",
      { min: 0, max: 1 },
      0,
    ),
    'scheduled-sampling-ramp': int(
      'N',
      'raise that chance linearly from 0 over the first N steps',
      { min: 0 },
      0,
    ),
    'test-size': int('N', 'held-out pairs to score at the end (default 2000)', { min: 1 }, 2000),
    beam: int(
      'N',
      'also score beam search of this size on the test pairs (default 5)',
      { min: 1 },
      5,
    ),
    seed: int('N', '(default 1)', { min: 0 }, 1),
    threads: common.threads,
    out: text(
      'FILE',
      'where to save the model (default seq2seq.safetensors)',
      'seq2seq.safetensors',
    ),
    resume: text(
      'FILE',
      'continue the run a checkpoint saved, exactly (give the same data, seed\nand batch size; the architecture and vocabularies come from FILE)',
    ),
  },
  async run(v) {
    setThreads(v.threads);
    const out = v.out;
    checkOutputPath(out);
    const seed = v.seed;
    const testSize = v['test-size'];
    let train: TextPair[];
    let test: TextPair[];
    if (v.task !== undefined) {
      if (v.pairs !== undefined) throw new UsageError('give --pairs or --task, not both');
      train = datePairs(v.examples, seed);
      test = datePairs(testSize, seed + 1_000_003);
    } else {
      const file = v.pairs;
      if (!file) throw new UsageError('seq2seq train needs --pairs FILE.tsv or --task dates');
      const all = parsePairs(readBytes(file), file, {
        sourceColumn: v['source-column'] - 1,
        targetColumn: v['target-column'] - 1,
      });
      if (testSize >= all.length) {
        throw new UsageError(`--test-size ${testSize} leaves no training pairs of ${all.length}`);
      }
      [train, test] = splitPairs(all, testSize / all.length, seed);
    }
    const vocab = (texts: string[], specials: string[]) =>
      makeTokenizer(v.tokenizer, texts.join('\n'), {
        specials,
        maxVocab: v['max-vocab'],
        vocabSize: v['vocab-size'],
        lowercase: v.tokenizer.kind === 'word' ? true : undefined,
      });
    let model: Seq2Seq;
    if (v.resume !== undefined) {
      model = await Seq2Seq.load(v.resume);
      if (!model.resumeState) {
        throw new UsageError(
          `${v.resume} holds no training state to resume (it was saved with weights only)`,
        );
      }
    } else {
      model = new Seq2Seq({
        sourceTokenizer: await vocab(
          train.map((p) => p.source),
          [],
        ),
        targetTokenizer: await vocab(
          train.map((p) => p.target),
          ['<pad>', '<bos>', '<eos>'],
        ),
        cell: v.cell,
        hiddenSize: v.hidden,
        encoderHiddenSize: v['encoder-hidden'],
        bidirectional: !v.unidirectional,
        inputFeeding: v['input-feeding'],
        encoderLayers: v['encoder-layers'],
        decoderLayers: v['decoder-layers'],
        embeddingSize: v.embedding,
        attention: v.attention,
        dropout: v.dropout,
        seed,
      });
    }
    process.stderr.write(
      `${model.summary()}\ntraining on ${train.length.toLocaleString('en-US')} pairs, ` +
        `testing on ${test.length.toLocaleString('en-US')}\n`,
    );
    const options = trainingOptions(v, out, 10);
    const history = await withProgress(options.timeLimit, (watch) =>
      model.fit(train, {
        ...options,
        ...watch,
        labelSmoothing: v['label-smoothing'],
        scheduledSampling: {
          rate: v['scheduled-sampling'],
          rampSteps: v['scheduled-sampling-ramp'],
        },
        seed,
        resume: model.resumeState ?? undefined,
        // Words cut by --max-vocab train as <unk>; characters are all in the vocabulary.
        unknown: 'map',
      }),
    );
    await model.save(out, { weightsOnly: v['weights-only'] });
    process.stdout.write(
      `trained ${history.steps} steps in ${history.seconds.toFixed(1)} s ` +
        `(${Math.round(history.tokensPerSec).toLocaleString('en-US')} target tokens/s; ${history.stopped})\n` +
        `saved ${out}\n`,
    );
    // Word vocabularies are lowercased, so their output is compared with lowercased targets.
    const lowercase = model.targetTokenizer?.kind === 'word';
    for (const beam of v.beam > 1 ? [1, v.beam] : [1]) {
      const s = await scoreTranslations(model, test, { beam, unknown: 'map', lowercase });
      process.stdout.write(
        `${beam === 1 ? 'greedy' : `beam ${beam}`}: exact match ${(100 * s.exactMatch).toFixed(2)}%, ` +
          `BLEU ${s.bleu.bleu.toFixed(2)} on ${s.pairs} held-out pairs (${s.seconds.toFixed(1)} s)\n`,
      );
    }
  },
});
