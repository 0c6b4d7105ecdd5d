#!/usr/bin/env node
// What subword vocabularies buy, for the same training wall time:
//   1. a language model on Tiny Shakespeare with character vs byte-level BPE tokens, scored in bits
//      per character on the same held-out tail (so the two vocabularies are comparable);
//   2. English -> German seq2seq with word vs BPE vocabularies, scored by corpus BLEU of greedy
//      translations of the same held-out pairs (lowercased for both, as word models lowercase).
// Uses the built package (../dist). Prints a markdown table.
//
// Usage: node bench/subword-quality.mjs [--lm-seconds S] [--s2s-seconds S] [--pairs FILE.tsv]
//        [--only lm|s2s]
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const {
  BpeTokenizer,
  CharTokenizer,
  LanguageModel,
  Seq2Seq,
  WordTokenizer,
} = require('../dist/index.js');
const { evaluateTokens } = require('../dist/train/language-model.js');
const { parsePairs } = require('../dist/text/pairs.js');
const { splitPairs } = require('../dist/train/seq2seq-fit.js');
const { bleuTokens, corpusBleu } = require('../dist/train/bleu.js');

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const only = flag('only', '');

/** Bits per character of `model` on `text`: one stream, state carried, every scored token. */
function bitsPerCharacter(model, text, steps) {
  const ids = model.tokenizer.encode(text);
  const { loss, count } = evaluateTokens(model, ids, 1, steps);
  const scored = [...model.tokenizer.decode(ids.subarray(1, 1 + count))].length;
  return { bpc: (loss * count) / Math.LN2 / scored, tokens: count, chars: scored };
}

async function languageModels(seconds) {
  const text = fs.readFileSync(path.join(root, 'data', 'tinyshakespeare.txt'), 'utf8');
  const cut = Math.floor(text.length * 0.9);
  const [train, held] = [text.slice(0, cut), text.slice(cut)];
  const rows = [];
  for (const kind of ['char', 'bpe']) {
    const started = performance.now();
    const tokenizer =
      kind === 'char'
        ? CharTokenizer.fromText(text)
        : await BpeTokenizer.train(train, { vocabSize: 2000 });
    const tokenizerSeconds = (performance.now() - started) / 1000;
    const model = new LanguageModel({ tokenizer, hiddenSize: 256, embeddingSize: 64, seed: 1 });
    const steps = kind === 'char' ? 100 : 40;
    const h = await model.fit(train, {
      epochs: 1000,
      timeLimit: seconds,
      seqLength: steps,
      batchSize: 32,
      lrSchedule: 'constant',
      validationSplit: 0,
      seed: 1,
    });
    const r = bitsPerCharacter(model, held, steps);
    rows.push(
      `| ${kind} (${tokenizer.size} ids) | ${h.steps} | ${seconds} s (+${tokenizerSeconds.toFixed(1)} s tokenizer) | ` +
        `${r.tokens} tokens for ${r.chars} chars | ${r.bpc.toFixed(3)} |`,
    );
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  console.log(`\nLanguage model, LSTM 256, ${seconds} s of training each, Tiny Shakespeare:\n`);
  console.log('| tokens | steps | training | held-out tail | bits/char |');
  console.log('| --- | ---: | --- | --- | ---: |');
  for (const row of rows) console.log(row);
}

async function translators(seconds, file) {
  const all = parsePairs(fs.readFileSync(file), file, { sourceColumn: 0, targetColumn: 1 });
  const [train, test] = splitPairs(all, 1000 / all.length, 1);
  const rows = [];
  for (const kind of ['word', 'bpe']) {
    const sources = train.map((p) => p.source).join('\n');
    const targets = train.map((p) => p.target).join('\n');
    const specials = ['<pad>', '<bos>', '<eos>'];
    const make = (t, s) =>
      kind === 'word'
        ? WordTokenizer.fromText(t, { specials: s, maxVocab: 8000, lowercase: true })
        : BpeTokenizer.train(t, { specials: s, vocabSize: 4000 });
    const model = new Seq2Seq({
      sourceTokenizer: await make(sources, []),
      targetTokenizer: await make(targets, specials),
      hiddenSize: 128,
      embeddingSize: 64,
      seed: 1,
    });
    const h = await model.fit(train, {
      epochs: 1000,
      timeLimit: seconds,
      batchSize: 64,
      lrSchedule: 'constant',
      validationSplit: 0,
      labelSmoothing: 0.1,
      unknown: 'map',
      seed: 1,
    });
    const got = await model.translate(
      test.map((p) => p.source),
      { beam: 1, unknown: 'map' },
    );
    const bleu = corpusBleu(
      got.map((t) => bleuTokens(t.text.toLowerCase())),
      test.map((p) => bleuTokens(p.target.toLowerCase())),
    );
    rows.push(
      `| ${kind} (${model.spec.sourceVocab} / ${model.spec.targetVocab} ids) | ${h.steps} | ${bleu.bleu.toFixed(2)} |`,
    );
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  console.log(
    `\nEnglish -> German, ${path.basename(file)}, ${train.length} training pairs, ${test.length} held out, ` +
      `${seconds} s of training each, greedy decoding:\n`,
  );
  console.log('| vocabulary (source / target) | steps | BLEU (lowercased) |');
  console.log('| --- | ---: | ---: |');
  for (const row of rows) console.log(row);
}

if (only !== 's2s') await languageModels(Number(flag('lm-seconds', '90')));
if (only !== 'lm') {
  const pairs = flag('pairs');
  if (!pairs) throw new Error('--pairs FILE.tsv is needed for the seq2seq comparison');
  await translators(Number(flag('s2s-seconds', '120')), pairs);
}
