#!/usr/bin/env node
// What int8 and bf16 weights cost in quality, for the shipped default model (models/default.safetensors,
// trained on data/tinyshakespeare.txt with the last 5% held out for validation):
//   1. held-out loss in nats per token (character) on that last 5%: float32 as the training
//      forward computes it, float32 on the packed generation steps (lmScore), bf16 and int8 (on
//      their packed steps, as they generate);
//   2. greedy decoding of 100 prompts taken from the held-out text: how many generated tokens
//      equal float32's at the same position, how many come before the first difference, and how
//      many continuations are identical.
// Uses the built package (../dist). Prints markdown.
//
// Usage: node bench/quantization-quality.mjs [--tokens N] (greedy tokens per prompt, default 64)
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { LanguageModel, info } = require('../dist/index.js');
const { native } = require('../dist/core/native.js');

const at = process.argv.indexOf('--tokens');
const maxTokens = at >= 0 ? Number(process.argv[at + 1]) : 64;
const corpus = fs.readFileSync(path.join(root, 'data', 'tinyshakespeare.txt'), 'utf8');
const heldOut = corpus.slice(Math.floor(corpus.length * 0.95));
const float = await LanguageModel.load(path.join(root, 'models', 'default.safetensors'));
const models = { float32: float, bf16: float.quantize('bf16'), int8: float.quantize('int8') };

const ids = float.tokenizer.encode(heldOut);
const rows = Math.max(1, Math.min(64, Math.floor((ids.length - 1) / 100)));
const reference = float.evaluate(heldOut).loss;
const packed = native.lmScore(float.nativeWeights(), ids, rows) / (ids.length - 1);

const step = Math.floor((heldOut.length - 200) / 100);
const prompts = Array.from({ length: 100 }, (_, i) => heldOut.slice(i * step, i * step + 48));
const greedy = { prompts, maxTokens, temperature: 0 };
const want = await float.generate(greedy);

const lines = [
  `Default model ${float.describe()}; held-out: the last 5% of data/tinyshakespeare.txt ` +
    `(${ids.length - 1} next-character predictions, ${rows} streams); ${info().cpu}, ` +
    `${info().isa} kernels, int8 kernel ${info().int8Kernel}.`,
  '',
  `float32, training forward: ${reference.toFixed(5)} nats/token`,
  '',
  '| weights | held-out loss (nats/token) | vs float32 | greedy tokens equal at their position | tokens before the first difference | identical continuations |',
  '| --- | --- | --- | --- | --- | --- |',
];
for (const [name, model] of Object.entries(models)) {
  const loss = name === 'float32' ? packed : model.evaluate(heldOut).loss;
  const got = name === 'float32' ? want : await model.generate(greedy);
  let same = 0;
  let prefix = 0;
  let identical = 0;
  got.forEach((s, i) => {
    const w = [...want[i]];
    const g = [...s];
    let k = 0;
    while (k < g.length && g[k] === w[k]) k++;
    prefix += k;
    identical += s === want[i] ? 1 : 0;
    g.forEach((c, j) => (same += c === w[j] ? 1 : 0));
  });
  const total = 100 * maxTokens;
  lines.push(
    `| ${name} | ${loss.toFixed(5)} | ${name === 'float32' ? '—' : `${(100 * (loss / packed - 1)).toFixed(3)}%`} | ` +
      `${same} of ${total} (${((100 * same) / total).toFixed(1)}%) | ${(prefix / 100).toFixed(1)} of ${maxTokens} | ${identical} of 100 |`,
  );
}
console.log(lines.join('\n'));
