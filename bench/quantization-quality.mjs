#!/usr/bin/env node
// What int8 and bf16 weights cost in quality, for a language model (by default the shipped one,
// models/default.safetensors, trained on data/tinyshakespeare.txt with the last 5% held out for
// validation, as `rnnkit train` holds it out):
//   1. held-out loss in nats per token on the last 5% of the text: float32 as the training
//      forward computes it, float32 on the packed generation steps (lmScore), bf16 and int8 (on
//      their packed steps, as they generate);
//   2. greedy decoding of 100 prompts taken from the held-out text: how many generated tokens
//      (the model's tokenizer's, characters or words) equal float32's at the same position, how
//      many come before the first difference, and how many continuations are identical.
// Uses the built package (../dist). Prints markdown.
//
// Usage: node bench/quantization-quality.mjs [--tokens N] (greedy tokens per prompt, default 64)
//          [--model FILE] [--data FILE] (the model and the text it was trained on)
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { commandLine } from './common.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { LanguageModel, info } = require('../dist/index.js');
const { native } = require('../dist/core/native.js');

const { values } = commandLine(
  'usage: node bench/quantization-quality.mjs [--tokens N] [--model FILE] [--data FILE]',
  {
    tokens: { type: 'string', default: '64' },
    model: { type: 'string', default: path.join(root, 'models', 'default.safetensors') },
    data: { type: 'string', default: path.join(root, 'data', 'tinyshakespeare.txt') },
  },
  { counts: ['tokens'] },
);
const maxTokens = values.tokens;
const corpus = fs.readFileSync(values.data, 'utf8');
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
    `${path.basename(values.data)} (${ids.length - 1} next-token predictions, ${rows} streams); ${info().cpu}, ` +
    `${info().isa} kernels, int8 kernel ${info().int8Kernel}.`,
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
