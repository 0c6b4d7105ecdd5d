#!/usr/bin/env node
// One worker of scripts/fuzz-loaders.js: loads files as rnnkit serves them and reports, one JSON
// line each, whether the load was refused (with its message) or what model it gave (a
// fingerprint). Before each file it prints `start <index>`, so that the parent can tell which file
// a crash or a hang happened on.
//   node scripts/fuzz-load-child.js <safetensors|onnx> <list.json> <first index>
// list.json: an array of file paths.
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const { loadModel } = require(path.join(dist, 'index.js'));

const [format, listFile, firstArg] = process.argv.slice(2);
const files = JSON.parse(fs.readFileSync(listFile, 'utf8'));

const digest = (a) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

/** A language-model checkpoint as served: loaded, then generating; its spec, tokens and weights. */
async function safetensors(file) {
  const model = await loadModel(file);
  const text = await model.generate({ prompts: ['ab'], maxTokens: 4, temperature: 0 });
  const weights = model.parameters().map((p) => digest(p.data));
  return JSON.stringify([model.spec, model.tokenizer?.toJSON(), weights, text]);
}

/** An .onnx file as served: checked, opened in onnxruntime, and run for one step. */
async function onnx(file) {
  const ort = require('onnxruntime-node');
  const { openOnnxSession } = require(path.join(dist, 'onnx', 'session.js'));
  const { info, session } = await openOnnxSession(file, 1);
  try {
    const { numLayers: L, hiddenSize: H } = info.spec;
    const feeds = {
      tokens: new ort.Tensor('int64', BigInt64Array.of(1n), [1, 1]),
      h0: new ort.Tensor('float32', new Float32Array(L * H).fill(0.1), [L, 1, H]),
    };
    if (info.spec.cell === 'lstm') {
      feeds.c0 = new ort.Tensor('float32', new Float32Array(L * H).fill(-0.1), [L, 1, H]);
    }
    const out = await session.run(feeds);
    const outputs = Object.keys(out)
      .sort()
      .map((k) => digest(out[k].data));
    return JSON.stringify([info.spec, info.tokenizer, info.kind, outputs]);
  } finally {
    await session.release();
  }
}

(async () => {
  const load = format === 'onnx' ? onnx : safetensors;
  for (let i = Number(firstArg); i < files.length; i++) {
    process.stdout.write(`start ${i}\n`);
    let result;
    try {
      result = { i, loaded: await load(files[i]) };
    } catch (error) {
      result = { i, refused: String(error instanceof Error ? error.message : error) };
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
})();
