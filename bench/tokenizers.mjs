#!/usr/bin/env node
// Subword tokenizer benchmark: BpeTokenizer (the built package, ../dist) beside SentencePiece's
// spm_train and spm_encode (Debian's `sentencepiece`) on the same text and vocabulary size, one
// after the other in one run. Training is timed from the corpus file to the trained vocabulary;
// encoding from the text in memory (rnnkit) or on stdin (spm_encode, output to /dev/null) to ids.
//
// Usage: node bench/tokenizers.mjs --corpus FILE [--vocab N]   (default N = 8000)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const { BpeTokenizer } = require('../dist/index.js');

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const corpus = flag('corpus');
const vocab = Number(flag('vocab', '8000'));
if (!corpus || !Number.isInteger(vocab)) {
  console.error('usage: node bench/tokenizers.mjs --corpus FILE [--vocab N]');
  process.exit(2);
}
const bytes = fs.statSync(corpus).size;
const text = fs.readFileSync(corpus, 'utf8');
const mb = bytes / 1e6;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-tok-bench-'));

function timed(run) {
  const start = performance.now();
  const value = run();
  return { seconds: (performance.now() - start) / 1000, value };
}

function spm(tool, args, input) {
  const r = spawnSync(tool, args, {
    input: input === undefined ? undefined : fs.readFileSync(input),
    stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
    maxBuffer: 1 << 30,
  });
  if (r.error) throw new Error(`${tool} is not installed (Debian package sentencepiece)`);
  if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr}`);
}

const rows = [];
const start = performance.now();
const bpe = await BpeTokenizer.train({ file: corpus }, { vocabSize: vocab });
const bpeTrain = (performance.now() - start) / 1000;
const encoded = timed(() => bpe.encode(text));
rows.push(['rnnkit BpeTokenizer (byte-level BPE)', bpe.size, bpeTrain, encoded.seconds]);
if (bpe.decode(encoded.value) !== text)
  throw new Error('BpeTokenizer did not round-trip the corpus');

for (const type of ['bpe', 'unigram']) {
  const prefix = path.join(dir, type);
  const train = timed(() =>
    spm('spm_train', [
      `--input=${corpus}`,
      `--model_prefix=${prefix}`,
      `--vocab_size=${vocab}`,
      `--model_type=${type}`,
      '--minloglevel=2',
    ]),
  );
  const encode = timed(() =>
    spm('spm_encode', [`--model=${prefix}.model`, '--output_format=id'], corpus),
  );
  rows.push([`spm_train/spm_encode --model_type=${type}`, vocab, train.seconds, encode.seconds]);
}
fs.rmSync(dir, { recursive: true, force: true });

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `corpus ${path.basename(corpus)}: ${mb.toFixed(2)} MB; ${os.cpus().length} cores, ${cpu}\n`,
);
console.log('| tokenizer | vocabulary | train (s) | encode (s) | encode (MB/s) |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [name, size, train, encode] of rows) {
  console.log(
    `| ${name} | ${size} | ${train.toFixed(2)} | ${encode.toFixed(2)} | ${(mb / encode).toFixed(1)} |`,
  );
}
