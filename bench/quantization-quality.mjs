#!/usr/bin/env node
// What int8 and bf16 weights cost in quality. For a language model (by default the shipped one,
// models/default.safetensors, trained on data/tinyshakespeare.txt with the last 5% held out for
// validation, as `rnnkit train` holds it out):
//   1. held-out loss in nats per token on the last 5% of the text: float32 as the training
//      forward computes it, float32 on the packed generation steps (lmScore), bf16 and int8 (on
//      their packed steps, as they generate);
//   2. greedy decoding of 100 prompts taken from the held-out text: how many generated tokens
//      (the model's tokenizer's, characters or words) equal float32's at the same position, how
//      many come before the first difference, and how many continuations are identical.
// For a sequence-to-sequence model, on the pairs `rnnkit seq2seq train` held out (the same
// --test-size and --seed; --task dates, or --data PAIRS.tsv): exact match and corpus BLEU of
// greedy and beam-search translations in float32, bf16 and int8, and how many translations equal
// float32's.
// Uses the built package (../dist). Prints markdown.
//
// Usage: node bench/quantization-quality.mjs [--model FILE] [--data FILE] [--tokens N]
//          (language model: greedy tokens per prompt, default 64)
//        node bench/quantization-quality.mjs --model FILE (--task dates | --data PAIRS.tsv)
//          [--test-size N] [--seed N] [--beam N] (seq2seq; defaults 2000, 1, 5)
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { commandLine } from './common.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const rnnkit = require('../dist/index.js');
const { LanguageModel, Seq2Seq, info } = rnnkit;
const { native } = require('../dist/core/native.js');

const usage =
  'usage: node bench/quantization-quality.mjs [--model FILE] [--data FILE] [--tokens N]\n' +
  '       node bench/quantization-quality.mjs --model FILE (--task dates | --data PAIRS.tsv)\n' +
  '         [--test-size N] [--seed N] [--beam N]';
const { values } = commandLine(
  usage,
  {
    tokens: { type: 'string', default: '64' },
    model: { type: 'string', default: path.join(root, 'models', 'default.safetensors') },
    data: { type: 'string' },
    task: { type: 'string' },
    'test-size': { type: 'string', default: '2000' },
    seed: { type: 'string', default: '1' },
    beam: { type: 'string', default: '5' },
  },
  { counts: ['tokens', 'test-size', 'beam'] },
);
const where = `${info().cpu}, ${info().isa} kernels, int8 kernel ${info().int8Kernel}`;
const { metadata } = await rnnkit.readSafetensors(values.model);
if (metadata.kind === 'seq2seq') await seq2seqQuality();
else await languageModelQuality();

async function seq2seqQuality() {
  const { splitPairs } = require('../dist/train/seq2seq-fit.js');
  const { scoreTranslations } = require('../dist/decode/score.js');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) {
    console.error(`--seed must be an integer >= 0, got '${values.seed}'\n${usage}`);
    process.exit(2);
  }
  const size = values['test-size'];
  let test;
  if (values.task === 'dates' && values.data === undefined) {
    test = rnnkit.datePairs(size, seed + 1_000_003);
  } else if (values.task === undefined && values.data !== undefined) {
    const all = rnnkit.parsePairs(fs.readFileSync(values.data), values.data);
    test = splitPairs(all, size / all.length, seed)[1];
  } else {
    console.error(`a seq2seq model needs --task dates or --data PAIRS.tsv (one of them)\n${usage}`);
    process.exit(2);
  }
  const float = await Seq2Seq.load(values.model);
  const lowercase = float.targetTokenizer?.kind === 'word';
  const lines = [
    `Model ${path.basename(values.model)}: ${float.describe()}; ${test.length} held-out pairs ` +
      `(${values.task ?? path.basename(values.data)}, seed ${seed}); ${where}.`,
    '',
    `| weights | greedy exact match | greedy BLEU | beam ${values.beam} exact match | beam ${values.beam} BLEU | greedy translations equal to float32's |`,
    '| --- | --- | --- | --- | --- | --- |',
  ];
  let want = [];
  for (const dtype of ['float32', 'bf16', 'int8']) {
    const model = dtype === 'float32' ? float : float.quantize(dtype);
    const options = { unknown: 'map', lowercase };
    const greedy = await scoreTranslations(model, test, { ...options, beam: 1 });
    const beam = await scoreTranslations(model, test, { ...options, beam: values.beam });
    if (dtype === 'float32') want = greedy.translations;
    const same = greedy.translations.filter((t, i) => t === want[i]).length;
    const pct = (x) => `${(100 * x).toFixed(2)}%`;
    lines.push(
      `| ${dtype} | ${pct(greedy.exactMatch)} | ${greedy.bleu.bleu.toFixed(2)} | ${pct(beam.exactMatch)} | ` +
        `${beam.bleu.bleu.toFixed(2)} | ${same} of ${test.length} |`,
    );
  }
  console.log(lines.join('\n'));
}

async function languageModelQuality() {
  const maxTokens = values.tokens;
  const corpus = fs.readFileSync(
    values.data ?? path.join(root, 'data', 'tinyshakespeare.txt'),
    'utf8',
  );
  const heldOut = corpus.slice(Math.floor(corpus.length * 0.95));
  const float = await LanguageModel.load(values.model);
  const models = { float32: float, bf16: float.quantize('bf16'), int8: float.quantize('int8') };

  // A word model's held-out text has words outside its vocabulary: they count as the unknown token.
  const unknown = 'map';
  const ids = float.tokenizer.encode(heldOut, { unknown });
  const rows = Math.max(1, Math.min(64, Math.floor((ids.length - 1) / 100)));
  const reference = float.evaluate(heldOut, { unknown }).loss;
  const packed = native.lmScore(float.nativeWeights(), ids, rows) / (ids.length - 1);

  const step = Math.floor((heldOut.length - 200) / 100);
  const prompts = Array.from({ length: 100 }, (_, i) => heldOut.slice(i * step, i * step + 48));
  const greedy = { prompts, maxTokens, temperature: 0, unknown };
  const want = await float.generate(greedy);

  const lines = [
    `Model ${path.basename(values.model)}: ${float.describe()}; held-out: the last 5% of ` +
      `${path.basename(values.data ?? 'tinyshakespeare.txt')} (${ids.length - 1} next-token predictions, ${rows} streams); ${where}.`,
    '',
    `float32, training forward: ${reference.toFixed(5)} nats/token`,
    '',
    '| weights | held-out loss (nats/token) | vs float32 | greedy tokens equal at their position | tokens before the first difference | identical continuations |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [name, model] of Object.entries(models)) {
    const loss = name === 'float32' ? packed : model.evaluate(heldOut, { unknown }).loss;
    const got = name === 'float32' ? want : await model.generate(greedy);
    let same = 0;
    let prefix = 0;
    let identical = 0;
    let total = 0;
    got.forEach((s, i) => {
      const w = [...float.tokenizer.encode(want[i], { unknown })];
      const g = [...float.tokenizer.encode(s, { unknown })];
      total += w.length;
      let k = 0;
      while (k < g.length && g[k] === w[k]) k++;
      prefix += k;
      identical += s === want[i] ? 1 : 0;
      g.forEach((c, j) => (same += c === w[j] ? 1 : 0));
    });
    lines.push(
      `| ${name} | ${loss.toFixed(5)} | ${name === 'float32' ? '—' : `${(100 * (loss / packed - 1)).toFixed(3)}%`} | ` +
        `${same} of ${total} (${((100 * same) / total).toFixed(1)}%) | ${(prefix / 100).toFixed(1)} of ${maxTokens} | ${identical} of 100 |`,
    );
  }
  console.log(lines.join('\n'));
}
