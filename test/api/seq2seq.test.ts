import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli';
import { searchConfig } from '../helpers/models';
import {
  CharTokenizer,
  LanguageModel,
  Seq2Seq,
  attentionHeatmapSvg,
  bleuTokens,
  corpusBleu,
  dateAlphabet,
  datePairs,
  pairBatch,
  parsePairs,
  sourceBatch,
  type Seq2SeqConfig,
} from '../../lib/index';
import { addonChoice, type Native } from '../../lib/core/native';
import { Random } from '../../lib/core/random';
import { mixDecoderInputs, samplingRate } from '../../lib/train/seq2seq';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-s2s-'));
const ids = (a: number[]) => Int32Array.from(a);

function tiny(extra: Partial<Seq2SeqConfig> = {}) {
  return new Seq2Seq({
    sourceVocab: 9,
    targetVocab: 8,
    embeddingSize: 4,
    hiddenSize: 6,
    bos: 1,
    eos: 2,
    seed: 3,
    ...extra,
  });
}

const sources = [ids([3, 4, 5, 6]), ids([7, 3]), ids([4, 4, 4])];
const targets = [ids([3, 4]), ids([5, 6, 7, 3]), ids([4])];

const configs: Partial<Seq2SeqConfig>[] = [
  { cell: 'lstm', attention: 'general', bidirectional: true, encoderLayers: 2 },
  { cell: 'gru', attention: 'additive', bidirectional: false, decoderLayers: 2 },
  { cell: 'lstm', attention: 'dot', bidirectional: true, encoderHiddenSize: 3 },
  { cell: 'lstm', attention: 'additive', inputFeeding: true },
  { cell: 'gru', attention: 'general', inputFeeding: true, decoderLayers: 2 },
];

describe('Seq2Seq training', () => {
  it.each(configs)('gradients match finite differences (%o)', (config) => {
    const m = tiny(config);
    const batch = pairBatch(sources, targets, 1, 2);
    m.zeroGrad();
    const { count } = m.lossAndGradients(batch);
    const meanLoss = () => m.lossSum(batch).sum / count;
    for (const [name, p] of m.namedParameters()) {
      const analytic = p.grad.slice();
      for (let k = 0; k < 5; k++) {
        const i = (k * 7919 + 13) % p.size;
        const saved = p.data[i];
        p.data[i] = saved + 1e-2;
        const up = meanLoss();
        p.data[i] = saved - 1e-2;
        const down = meanLoss();
        p.data[i] = saved;
        const numeric = (up - down) / 2e-2;
        expect(Math.abs(numeric - analytic[i]), `${name}[${i}]`).toBeLessThan(
          2e-3 + 2e-2 * Math.abs(numeric),
        );
      }
    }
  });

  it('gives a padded row the loss, alignment and translation it gets alone', async () => {
    for (const config of configs) {
      const m = tiny(config);
      const batch = pairBatch(sources, targets, 1, 2);
      const align = m.alignments(batch);
      const search = await m.beamSearch(sourceBatch(sources), {
        beam: 3,
        nBest: 2,
        maxLength: 6,
        lengthPenalty: 0.6,
      });
      const { sourceSteps: S } = batch;
      const alone = (k: number) => m.lossSum(pairBatch([sources[k]], [targets[k]], 1, 2)).sum;
      expect(m.lossSum(batch).sum).toBeCloseTo(alone(0) + alone(1) + alone(2), 4);
      for (let b = 0; b < sources.length; b++) {
        const one = pairBatch([sources[b]], [targets[b]], 1, 2);
        const oneAlign = m.alignments(one);
        const n = sources[b].length;
        for (let t = 0; t < one.targetSteps; t++) {
          const row = align.subarray((t * 3 + b) * S, (t * 3 + b) * S + S);
          expect(Array.from(row.subarray(n)).every((w) => w === 0)).toBe(true);
          for (let j = 0; j < n; j++) expect(row[j]).toBeCloseTo(oneAlign[t * n + j], 5);
        }
        const single = await m.beamSearch(sourceBatch([sources[b]]), {
          beam: 3,
          nBest: 2,
          maxLength: 6,
          lengthPenalty: 0.6,
        });
        expect(Array.from(single.tokens)).toEqual(
          Array.from(search.tokens.subarray(b * 12, b * 12 + 12)),
        );
        for (let k = 0; k < 2; k++)
          expect(single.scores[k]).toBeCloseTo(search.scores[b * 2 + k], 5);
      }
    }
  });
});

describe('scheduled sampling, checkpoints and resume', () => {
  const src = CharTokenizer.fromText(dateAlphabet());
  const tgt = CharTokenizer.fromText('0123456789-', { specials: ['<pad>', '<bos>', '<eos>'] });
  const small = (extra: Partial<Seq2SeqConfig> = {}) =>
    new Seq2Seq({
      sourceTokenizer: src,
      targetTokenizer: tgt,
      embeddingSize: 8,
      hiddenSize: 16,
      seed: 2,
      ...extra,
    });
  const weights = (m: Seq2Seq) => m.parameters().flatMap((p) => Array.from(p.data));

  it('replaces decoder inputs after bos with the prediction of the step before at about rate p', () => {
    const B = 300;
    const tgts = Array.from({ length: B }, (_, b) =>
      ids(Array.from({ length: 1 + (b % 9) }, () => 5)),
    );
    const batch = pairBatch(
      tgts.map(() => ids([3])),
      tgts,
      1,
      2,
    );
    const T = batch.targetSteps;
    const predictions = Int32Array.from({ length: T * B }, (_, i) => 100 + i);
    const rng = new Random(9);
    expect(mixDecoderInputs(batch, predictions, 0, rng)).toBe(batch.targetIn);
    expect(rng.save()).toBe(new Random(9).save());
    for (const p of [0.1, 0.5]) {
      const mixed = mixDecoderInputs(batch, predictions, p, new Random(9));
      expect(Array.from(mixDecoderInputs(batch, predictions, p, new Random(9)))).toEqual(
        Array.from(mixed),
      );
      let eligible = 0;
      let replaced = 0;
      for (let b = 0; b < B; b++) {
        expect(mixed[b]).toBe(1);
        for (let t = 1; t < T; t++) {
          const i = t * B + b;
          if (t >= batch.targetLengths[b]) {
            expect(mixed[i]).toBe(0);
            continue;
          }
          eligible++;
          if (mixed[i] !== batch.targetIn[i]) {
            replaced++;
            expect(mixed[i]).toBe(predictions[i - B]);
          }
        }
      }
      expect(Math.abs(replaced / eligible - p)).toBeLessThan(0.03);
    }
    const ramp = { scheduledSampling: 0.4, scheduledSamplingRamp: 10 };
    expect([0, 5, 10, 50].map((step) => samplingRate(ramp, step))).toEqual([0, 0.2, 0.4, 0.4]);
  });

  it('rate 0 trains exactly as teacher forcing; a positive rate still learns', async () => {
    const pairs = datePairs(400, 3);
    const options = { steps: 30, batchSize: 16, learningRate: 1e-2, validationSplit: 0 };
    const plain = small();
    await plain.fit(pairs, options);
    const zero = small();
    await zero.fit(pairs, { ...options, scheduledSampling: { rate: 0, rampSteps: 5 } });
    expect(weights(zero)).toEqual(weights(plain));

    const check = pairs.slice(0, 64);
    const batch = pairBatch(
      check.map((p) => src.encode(p.source)),
      check.map((p) => tgt.encode(p.target)),
      zero.spec.bos,
      zero.spec.eos,
    );
    const sampled = small();
    const before = sampled.lossSum(batch);
    const h = await sampled.fit(pairs, { ...options, steps: 60, scheduledSampling: 0.5 });
    const after = sampled.lossSum(batch);
    expect(h.steps).toBe(60);
    expect(after.sum / after.count).toBeLessThan((0.75 * before.sum) / before.count);
  });

  it('stopping at a checkpoint and resuming gives the weights of one uninterrupted run', async () => {
    const pairs = datePairs(60, 4);
    const config = { inputFeeding: true, encoderLayers: 2, decoderLayers: 2, dropout: 0.2 };
    const options = {
      batchSize: 8,
      learningRate: 5e-3,
      warmupSteps: 4,
      validationSplit: 0.2,
      validateEvery: 3,
      earlyStopping: { patience: 50 },
      scheduledSampling: { rate: 0.5, rampSteps: 8 },
      seed: 7,
    };
    const straight = small(config);
    const whole = await straight.fit(pairs, { ...options, steps: 14 });

    const file = path.join(tmp, 'resume.safetensors');
    const first = small(config);
    const saved: number[] = [];
    await first.fit(pairs, {
      ...options,
      steps: 7,
      checkpoint: { path: file, every: 3 },
      onCheckpoint: (c) => saved.push(c.step),
    });
    expect(saved).toEqual([3, 6]);
    const loaded = await Seq2Seq.load(file);
    expect(loaded.resumeState?.training.step).toBe(6);
    const rest = await loaded.fit(pairs, {
      ...options,
      steps: 14,
      resume: loaded.resumeState ?? undefined,
    });
    expect(weights(loaded)).toEqual(weights(straight));
    for (const key of ['train', 'validation', 'bestValLoss', 'steps', 'stopped'] as const) {
      expect(rest[key], key).toEqual(whole[key]);
    }

    await loaded.save(file, { weightsOnly: true });
    const bare = await Seq2Seq.load(file);
    expect(bare.resumeState).toBeNull();
    await expect(
      bare.fit(pairs, { ...options, steps: 20, resume: bare.resumeState as never }),
    ).rejects.toThrow(/resume holds no training state/);
    const resume = straight.resumeState ?? undefined;
    await expect(
      small(config).fit(pairs, { ...options, batchSize: 4, steps: 20, resume }),
    ).rejects.toThrow(/trained on 48 pairs in batches of 8, this run has 48 pairs in batches of 4/);
    await expect(
      small(config).fit(pairs, { ...options, optimizer: 'sgd', steps: 20, resume }),
    ).rejects.toThrow(/the checkpoint's optimizer is 'adam', this run asks for 'sgd'/);
    const lm = new LanguageModel({ vocabSize: 5, hiddenSize: 4, seed: 1 });
    const lmState = (
      await lm.fit(
        Int32Array.from({ length: 200 }, (_, i) => i % 5),
        {
          steps: 1,
          batchSize: 2,
          seqLength: 4,
          validationSplit: 0,
        },
      )
    ).resume;
    await expect(
      small(config).fit(pairs, { ...options, steps: 20, resume: lmState }),
    ).rejects.toThrow(/the training state is not a sequence-to-sequence one/);
    await expect(small().fit(pairs, { scheduledSampling: 1.5 })).rejects.toThrow(
      /scheduledSampling must be/,
    );
    await expect(
      small().fit(pairs, { scheduledSampling: { rate: 0.1, rampSteps: -1 } }),
    ).rejects.toThrow(/scheduledSampling.rampSteps/);
  });

  it('seq2seq train --checkpoint-every, --resume and --weights-only', () => {
    const out = path.join(tmp, 'cli.safetensors');
    const run = (...args: string[]) =>
      runCli([
        'seq2seq',
        'train',
        '--task',
        'dates',
        '--examples',
        '200',
        '--test-size',
        '10',
        '--hidden',
        '8',
        '--embedding',
        '4',
        '--batch-size',
        '16',
        '--beam',
        '1',
        '--scheduled-sampling',
        '0.3',
        '--threads',
        '1',
        ...args,
      ]);
    const first = run('--steps', '4', '--checkpoint-every', '2', '--out', out);
    expect(first.status, first.stderr).toBe(0);
    const resumed = run('--steps', '6', '--resume', out, '--out', out, '--weights-only');
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/trained 6 steps/);
    const again = run('--steps', '8', '--resume', out, '--out', out);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(
      /holds no training state to resume \(it was saved with weights only\)/,
    );
  });
});

describe('date normalisation', () => {
  const src = CharTokenizer.fromText(dateAlphabet());
  const tgt = CharTokenizer.fromText('0123456789-', { specials: ['<pad>', '<bos>', '<eos>'] });

  it('generates many formats of valid dates, reproducibly from a seed', () => {
    const pairs = datePairs(500, 7);
    expect(datePairs(500, 7)).toEqual(pairs);
    expect(new Set(pairs.map((p) => p.source.replace(/\d+/g, '#'))).size).toBeGreaterThan(40);
    for (const p of pairs) {
      expect(p.target).toMatch(/^(19[5-9]\d|20[0-4]\d)-\d\d-\d\d$/);
      expect(() => src.encode(p.source)).not.toThrow();
    }
  });

  it('learns to normalise dates in a worker thread; beam search agrees; save and load', async () => {
    const model = new Seq2Seq({
      sourceTokenizer: src,
      targetTokenizer: tgt,
      embeddingSize: 24,
      hiddenSize: 96,
      seed: 1,
    });
    const progress: number[] = [];
    const history = await model.fit(datePairs(20000, 1), {
      steps: 250,
      batchSize: 64,
      learningRate: 3e-3,
      lrSchedule: 'constant',
      validationSplit: 0.02,
      validateEvery: 100,
      onProgress: (p) => progress.push(p.step),
    });
    expect(history.stopped).toBe('completed');
    expect(progress.length).toBeGreaterThan(0);
    const test = datePairs(300, 2);
    const greedy = await model.translate(test.map((p) => p.source));
    const exact = greedy.filter((t, i) => t.text === test[i].target).length / test.length;
    expect(exact).toBeGreaterThan(0.9);
    const beam = await model.translate(
      test.slice(0, 50).map((p) => p.source),
      { beam: 4, nBest: 2 },
    );
    for (const t of beam) {
      expect(t.hypotheses).toHaveLength(2);
      expect(t.hypotheses[0].score).toBeGreaterThanOrEqual(t.hypotheses[1].score);
      expect(t.hypotheses[0].attention).toHaveLength(t.hypotheses[0].tokens.length);
      for (const row of t.hypotheses[0].attention) {
        expect(row).toHaveLength(t.sourceTokens.length);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      }
    }
    const few = test.slice(0, 20).map((p) => p.source);
    const sampled = await model.translate(few, { temperature: 1, seed: 4 });
    expect((await model.translate(few, { temperature: 1, seed: 4 })).map((t) => t.text)).toEqual(
      sampled.map((t) => t.text),
    );
    await expect(model.translate(few, { temperature: 1, beam: 2 })).rejects.toThrow(
      /sampling \(temperature > 0\) decodes with beam 1, got beam 2/,
    );
    const file = path.join(tmp, 'dates.safetensors');
    await model.save(file);
    const loaded = await Seq2Seq.load(file);
    expect(loaded.spec).toEqual(model.spec);
    const again = await loaded.translate(
      test.slice(0, 50).map((p) => p.source),
      { beam: 4, nBest: 2 },
    );
    expect(again.map((t) => t.hypotheses.map((h) => h.text))).toEqual(
      beam.map((t) => t.hypotheses.map((h) => h.text)),
    );
    const svg = attentionHeatmapSvg(
      beam[0].sourceTokens,
      beam[0].hypotheses[0].tokens,
      beam[0].hypotheses[0].attention,
    );
    expect(svg.match(/<rect x=/g)).toHaveLength(
      beam[0].sourceTokens.length * beam[0].hypotheses[0].tokens.length,
    );
  }, 120_000);
});

describe('bad input', () => {
  const src = CharTokenizer.fromText('abc ');
  const tgt = CharTokenizer.fromText('xyz', { specials: ['<pad>', '<bos>', '<eos>'] });
  const model = new Seq2Seq({
    sourceTokenizer: src,
    targetTokenizer: tgt,
    hiddenSize: 8,
    embeddingSize: 4,
    seed: 1,
  });

  it('rejects beam sizes of 0 or above the vocabulary, and n-best above the beam', async () => {
    await expect(model.translate(['abc'], { beam: 0 })).rejects.toThrow(/beam must be an integer/);
    await expect(model.translate(['abc'], { beam: 8 })).rejects.toThrow(
      /beam must be at most the target vocabulary size 7, got 8/,
    );
    await expect(model.translate(['abc'], { beam: 2, nBest: 3 })).rejects.toThrow(/nBest/);
  });

  it('rejects empty, too long and unknown sources, naming them', async () => {
    await expect(model.translate(['abc', ''])).rejects.toThrow(/sources\[1\] is empty/);
    await expect(model.translate(['a'.repeat(20)], { maxSourceLength: 10 })).rejects.toThrow(
      /sources\[0\] has 20 tokens, more than maxSourceLength 10/,
    );
    await expect(model.translate(['abd'])).rejects.toThrow(/character "d"/);
    const mapped = await model.translate(['abd'], { unknown: 'map', maxLength: 3 });
    expect(mapped).toHaveLength(1);
  });

  it('rejects dot attention between mismatched sizes and unknown attention kinds', () => {
    expect(() => tiny({ attention: 'dot', encoderHiddenSize: 5 })).toThrow(/dot attention needs/);
    expect(() => tiny({ attention: 'luong' as never })).toThrow(/'dot', 'general' or 'additive'/);
  });

  it('native entry points name the argument, the expectation and the value', async () => {
    const addon = createRequire(__filename)(addonChoice.file) as Native;
    const m = tiny({ cell: 'gru', attention: 'general' });
    const d = m.nativeDecoder();
    const enc = new Float32Array(2 * 1 * m.encoderSize);
    const config = searchConfig({ S: 2, bos: 1, eos: 2 });
    const search = (lengths: Int32Array, cfg: Partial<typeof config>) =>
      addon.seq2seqBeamSearch({
        ...d,
        enc,
        lengths,
        h0: new Float32Array(6),
        c0: null,
        config: { ...config, ...cfg },
      });
    expect(search(Int32Array.of(2), {}).lengths).toHaveLength(1);
    expect(() => search(Int32Array.of(3), {})).toThrow(
      /seq2seqBeamSearch: 'lengths\[0\]' must be in \[1, S=2\], got 3/,
    );
    expect(() => search(Int32Array.of(2), { beam: 9 })).toThrow(
      /'config.beam' must be at most the target vocabulary size 8, got 9/,
    );
    expect(() => search(Int32Array.of(2), { beam: 2, nBest: 3 })).toThrow(/'config.nBest'/);
    expect(() => search(Int32Array.of(2), { eos: 8 })).toThrow(/'config.eos'/);
    await expect(
      addon.seq2seqBeamSearchAsync({
        ...d,
        enc: new Float32Array(3),
        lengths: Int32Array.of(2),
        h0: new Float32Array(6),
        c0: null,
        config,
      }),
    ).rejects.toThrow(
      /'enc' must be a Float32Array of length 12 \(S\*B\*He = 2\*1\*6\), got length 3/,
    );
    const shape = { kind: 'dot' as const, T: 1, S: 1, B: 1, Hd: 4, He: 5, A: 4 };
    expect(() => addon.attentionParamCount(shape)).toThrow(/dot attention needs 'shape.He' \(5\)/);
    expect(() => addon.attentionParamCount({ ...shape, kind: 'luong' as never })).toThrow(
      /'shape.kind' must be one of 'dot', 'general', 'additive', got 'luong'/,
    );
  });

  it('parses pairs files with clear errors for missing columns, bad encodings and no pairs', () => {
    const enc = new TextEncoder();
    expect(parsePairs(enc.encode('Go.\tGeh.\n\nHi.\tHallo!\tCC-BY\r\n'), 'p.tsv')).toEqual([
      { source: 'Go.', target: 'Geh.' },
      { source: 'Hi.', target: 'Hallo!' },
    ]);
    expect(
      parsePairs(enc.encode('a\tb\tc\n'), 'p.tsv', { sourceColumn: 2, targetColumn: 0 }),
    ).toEqual([{ source: 'c', target: 'a' }]);
    expect(() => parsePairs(enc.encode('Go.\tGeh.\nHi.\n'), 'p.tsv')).toThrow(
      /p.tsv, line 2: 1 tab-separated column, need at least 2/,
    );
    expect(() => parsePairs(enc.encode('Go.\t \n'), 'p.tsv')).toThrow(
      /line 1: the target is empty/,
    );
    const latin1 = Uint8Array.from([...enc.encode('Gr\t'), 0xfc, 0x0a]);
    expect(() => parsePairs(latin1, 'p.tsv')).toThrow(/not valid UTF-8/);
    expect(() => parsePairs(enc.encode('\n\n'), 'p.tsv')).toThrow(/holds no pairs/);
  });

  it('fails to load a language model checkpoint or a misshapen one, with the reason', async () => {
    const lm = new LanguageModel({ vocabSize: 5, hiddenSize: 4, seed: 1 });
    const lmFile = path.join(tmp, 'lm.safetensors');
    await lm.save(lmFile);
    await expect(Seq2Seq.load(lmFile)).rejects.toThrow(
      /holds a 'language-model', not a sequence-to-sequence model/,
    );
    const file = path.join(tmp, 'tiny.safetensors');
    await model.save(file);
    const bigger = new Seq2Seq({
      ...model.spec,
      hiddenSize: 10,
      sourceTokenizer: src,
      targetTokenizer: tgt,
    });
    const { writeSafetensors, readSafetensors } = await import('../../lib/index');
    const { tensors, metadata } = await readSafetensors(file);
    const edited = { ...metadata, spec: JSON.stringify(bigger.spec) };
    await writeSafetensors(file, tensors, edited);
    await expect(Seq2Seq.load(file)).rejects.toThrow(/its metadata fails its checksum/);
    // Without checksums (an older file), the shapes tell.
    delete edited.checksums;
    await writeSafetensors(file, tensors, edited);
    await expect(Seq2Seq.load(file)).rejects.toThrow(
      /tensor '.*' has shape \[.*\], expected \[.*\]/,
    );
  });
});

describe('corpus BLEU', () => {
  it('is 100 for exact matches, 0 without 4-gram matches, and applies the brevity penalty', () => {
    const ref = bleuTokens('the cat sat on the mat .');
    expect(ref).toEqual(['the', 'cat', 'sat', 'on', 'the', 'mat', '.']);
    expect(corpusBleu([ref], [ref]).bleu).toBeCloseTo(100, 10);
    expect(corpusBleu([['the', 'mat']], [ref]).bleu).toBe(0);
    const short = corpusBleu([ref.slice(0, 6)], [ref]);
    expect(short.precisions).toEqual([1, 1, 1, 1]);
    expect(short.brevityPenalty).toBeCloseTo(Math.exp(1 - 7 / 6), 12);
    expect(short.bleu).toBeCloseTo(100 * Math.exp(1 - 7 / 6), 10);
  });

  it('sums n-gram counts over the corpus, clipping each by the reference', () => {
    // hyp "the the the the" vs "the cat": unigram precision 1/4 (clipped), no bigram match.
    const s = corpusBleu(
      [
        ['the', 'the', 'the', 'the'],
        ['a', 'b', 'c', 'd'],
      ],
      [
        ['the', 'cat'],
        ['a', 'b', 'c', 'd'],
      ],
    );
    expect(s.precisions[0]).toBeCloseTo(5 / 8, 12);
    expect(s.precisions[1]).toBeCloseTo(3 / 6, 12);
    expect(s.precisions[3]).toBeCloseTo(1 / 2, 12);
    expect(s.bleu).toBeCloseTo(100 * Math.pow((5 / 8) * (3 / 6) * (2 / 4) * (1 / 2), 1 / 4), 8);
  });
});
