#!/usr/bin/env node
// A small coverage-guided fuzzer for a target that exports `fuzz(data: Buffer)` (Jazzer.js's
// convention, so the same target runs under `npx jazzer` where its prebuilt binary loads). It
// keeps a corpus of inputs, mutates them (bit flips, special bytes, inserted, deleted, duplicated
// and spliced ranges, truncation, safetensors-aware header edits), and keeps every mutant that
// reaches a block of lib code (V8 block coverage, by hit-count bucket) no earlier input reached.
// An exception from the target is a finding: the input is written to the findings directory and
// the run stops with exit code 1. So is an input that takes longer than --slow ms.
//   node scripts/fuzz-coverage.js <target.js> [--time seconds (60)] [--seed S] [--corpus DIR]
//                                 [--findings DIR (fuzz-findings)] [--slow ms (2000)]
// Without --corpus it starts from checkpoints it writes itself (needs the built library).
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const inspector = require('node:inspector');
const os = require('node:os');
const path = require('node:path');
const { generator } = require('./fuzz-random.js');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const target = path.resolve(process.argv[2] ?? '');
if (!fs.existsSync(target)) {
  console.error('usage: node scripts/fuzz-coverage.js <target.js> [--time s] [--seed n] ...');
  process.exit(2);
}
const seconds = Number(option('time', '60'));
const slowMs = Number(option('slow', '2000'));
const corpusDir = option('corpus', null);
const findingsDir = path.resolve(option('findings', 'fuzz-findings'));
const seedUsed = Number(option('seed', String(Date.now() % 2 ** 31))) >>> 0;
const { int, pick } = generator(seedUsed);

const session = new inspector.Session();
session.connect();
function post(method, params = {}) {
  let result;
  let failure;
  session.post(method, params, (error, r) => ((failure = error), (result = r)));
  if (failure) throw failure;
  return result;
}

const lib = path.join(path.resolve(__dirname, '..'), 'dist') + path.sep;
/** The lib blocks (and hit-count buckets) the last run reached. */
function features() {
  const out = [];
  for (const script of post('Profiler.takePreciseCoverage').result) {
    if (!script.url.includes(lib)) continue;
    for (const fn of script.functions) {
      for (const r of fn.ranges) {
        if (r.count > 0)
          out.push(`${script.url}:${r.startOffset}:${r.endOffset}:${Math.clz32(r.count)}`);
      }
    }
  }
  return out;
}

const DICTIONARY = [
  '"dtype"',
  '"F16"',
  '"BF16"',
  '"F32"',
  '"I64"',
  '"shape"',
  '"data_offsets"',
  '"__metadata__"',
  '"spec"',
  '"tokenizer"',
  '"checksums"',
  '"training"',
  '"kind"',
  '"char"',
  '"word"',
  '"optimizer.m.x"',
  '0',
  '-1',
  '1e309',
  '9007199254740993',
  '[]',
  '{}',
  'null',
  '"\\u0000"',
];

/** Rewrites the header length to where the header's JSON object ends, when it can tell. */
function fixLength(b) {
  const end = b.lastIndexOf(0x7d);
  if (b.length < 9 || end < 8) return b;
  const m = Buffer.from(b);
  m.writeBigUInt64LE(BigInt(end - 7), 0);
  return m;
}

function mutate(input, corpus) {
  let b = Buffer.from(input);
  for (let steps = 1 + int(3); steps > 0; steps--) {
    const at = int(b.length + 1);
    switch (int(9)) {
      case 0:
        if (b.length) b[int(b.length)] ^= 1 << int(8);
        break;
      case 1:
        if (b.length) b[int(b.length)] = pick([0, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x5b, 0x30]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(16))]);
        break;
      case 3: {
        const from = int(b.length);
        b = Buffer.concat([
          b.subarray(0, at),
          b.subarray(from, from + 1 + int(32)),
          b.subarray(at),
        ]);
        break;
      }
      case 4:
        b = b.subarray(0, at);
        break;
      case 5: {
        const other = pick(corpus);
        const from = int(other.length);
        b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + 1 + int(64))]);
        break;
      }
      case 6:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(DICTIONARY)), b.subarray(at)]);
        break;
      case 7:
        b = fixLength(b);
        break;
      default: {
        // Replace a JSON token of the header (a quoted string or a number) with a dictionary one.
        const text = b.toString('latin1');
        const tokens = [...text.matchAll(/"[^"\\]{0,40}"|-?\d+(\.\d+)?/g)];
        if (tokens.length === 0) break;
        const t = pick(tokens);
        b = fixLength(
          Buffer.concat([
            b.subarray(0, t.index),
            Buffer.from(pick(DICTIONARY)),
            b.subarray(t.index + t[0].length),
          ]),
        );
      }
    }
  }
  return b;
}

async function seeds() {
  if (corpusDir && fs.existsSync(corpusDir) && fs.readdirSync(corpusDir).length > 0) {
    return fs.readdirSync(corpusDir).map((f) => fs.readFileSync(path.join(corpusDir, f)));
  }
  const { CharTokenizer, LanguageModel, Seq2Seq } = require(path.join(lib, 'index.js'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-fuzz-seeds-'));
  const tokenizer = CharTokenizer.fromText('abc de.');
  const lm = new LanguageModel({ tokenizer, hiddenSize: 4, embeddingSize: 3, seed: 1 });
  await lm.save(path.join(dir, 'f32.safetensors'));
  await lm.save(path.join(dir, 'f16.safetensors'), { dtype: 'float16' });
  await lm.toPyTorch(path.join(dir, 'pytorch.safetensors'));
  const s2s = new Seq2Seq({
    sourceVocab: 5,
    targetVocab: 4,
    embeddingSize: 2,
    hiddenSize: 2,
    bos: 1,
    eos: 2,
    seed: 1,
  });
  await s2s.save(path.join(dir, 'seq2seq.safetensors'));
  const out = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f)));
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

async function main() {
  const { fuzz } = require(target);
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const corpus = await seeds();
  const seen = new Set();
  features();
  const run = (input) => {
    const started = performance.now();
    try {
      fuzz(input);
    } catch (error) {
      return { error };
    }
    const ms = performance.now() - started;
    return ms > slowMs ? { error: new Error(`took ${ms.toFixed(0)} ms`) } : {};
  };
  const finding = (input, error) => {
    fs.mkdirSync(findingsDir, { recursive: true });
    const file = path.join(
      findingsDir,
      `finding-${createHash('sha1').update(input).digest('hex')}`,
    );
    fs.writeFileSync(file, input);
    console.log(`finding: ${file}\n${error?.stack ?? error}`);
  };
  for (const input of corpus) {
    const r = run(input);
    if (r.error) return (finding(input, r.error), 1);
    features().forEach((f) => seen.add(f));
  }
  const deadline = performance.now() + seconds * 1000;
  let execs = 0;
  let added = 0;
  while (performance.now() < deadline) {
    const input = mutate(pick(corpus), corpus);
    const r = run(input);
    execs++;
    if (r.error) {
      finding(input, r.error);
      return 1;
    }
    let fresh = false;
    for (const f of features()) {
      if (!seen.has(f)) {
        seen.add(f);
        fresh = true;
      }
    }
    if (fresh) {
      corpus.push(input);
      added++;
      if (corpusDir) {
        fs.mkdirSync(corpusDir, { recursive: true });
        fs.writeFileSync(
          path.join(corpusDir, createHash('sha1').update(input).digest('hex')),
          input,
        );
      }
    }
  }
  console.log(
    JSON.stringify({
      target: path.relative(process.cwd(), target),
      seed: seedUsed,
      seconds,
      execs,
      corpus: corpus.length,
      added,
      features: seen.size,
      findings: 0,
    }),
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
