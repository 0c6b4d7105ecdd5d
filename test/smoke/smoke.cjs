// Smoke test of an installed rnnkit package, run from a project that depends on it (CI runs it on
// the packed tarball: under emulated older CPUs and on several Node versions).
//   node smoke.cjs generate   load the shipped default model and generate (greedy)
//   node smoke.cjs full       also train a small model a few steps, export it to ONNX and
//                             generate from the export through onnxruntime-node
// SMOKE_EXPECT_ISA=NAME makes a different instruction-set variant than NAME a failure.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const rnnkit = require('rnnkit');

const mode = process.argv[2] ?? 'generate';
const fail = (msg) => {
  throw new Error(`smoke: ${msg}`);
};

async function main() {
  const i = rnnkit.info();
  console.log(
    `smoke: Node ${process.version}, rnnkit ${i.version}, ${i.isa} kernels (${i.addonSource}), ` +
      `GEMM ${i.gemm}, CPU ${i.cpu || 'unnamed'}`,
  );
  const expected = process.env.SMOKE_EXPECT_ISA;
  if (expected && i.isa !== expected) fail(`expected the ${expected} kernels, loaded ${i.isa}`);

  const pkg = path.dirname(require.resolve('rnnkit/package.json'));
  const model = await rnnkit.loadModel(path.join(pkg, 'models', 'default.safetensors'));
  const [text] = await model.generate({ prompts: ['ROMEO:'], maxTokens: 40, temperature: 0 });
  if (typeof text !== 'string' || text.length === 0) fail('the default model generated nothing');
  console.log(`smoke: default model: ${JSON.stringify(text.slice(0, 60))}`);
  if (mode === 'generate') return;
  if (mode !== 'full') fail(`mode must be generate or full, got '${mode}'`);

  const corpus = fs
    .readFileSync(path.join(pkg, 'data', 'tinyshakespeare.txt'), 'utf8')
    .slice(0, 20000);
  const small = new rnnkit.LanguageModel({
    tokenizer: rnnkit.CharTokenizer.fromText(corpus),
    cell: 'lstm',
    hiddenSize: 32,
    embeddingSize: 16,
    seed: 1,
  });
  const history = await small.fit(corpus, { steps: 5, batchSize: 4, seqLength: 16, seed: 1 });
  const loss = history.train.at(-1)?.loss;
  if (!Number.isFinite(loss)) fail(`training gave loss ${loss}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-smoke-'));
  try {
    const onnx = path.join(dir, 'small.onnx');
    await rnnkit.exportOnnx(small, onnx, { kind: 'step' });
    const generator = await rnnkit.OnnxGenerator.load(onnx);
    try {
      const options = { prompts: ['ROMEO:'], maxTokens: 20, temperature: 0 };
      const [fromOnnx] = await generator.generate(options);
      const [fromNative] = await small.generate(options);
      if (fromOnnx !== fromNative)
        fail(`ONNX and native greedy text differ: ${fromOnnx} / ${fromNative}`);
    } finally {
      await generator.close();
    }
    console.log(`smoke: trained 5 steps (loss ${loss.toFixed(3)}), exported to ONNX, same text`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
