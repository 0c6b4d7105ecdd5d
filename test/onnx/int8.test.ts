// The int8 ONNX export of a language model: its step in onnxruntime against rnnkit's native int8
// step (the state after it and the greedy token), its logits against the int8 decoder computed
// here from the native output and against float32 within the quantization error bound, the
// reference checker, the file's size, OnnxGenerator's greedy text, and the errors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BatchingGenerator,
  CharTokenizer,
  LanguageModel,
  OnnxGenerator,
  Random,
  buildOnnx,
  exportOnnx,
  readOnnxModel,
  type LanguageModelConfig,
} from '../../lib/index';
import { native } from '../../lib/core/native';
import { int8Values } from '../../lib/nn/quantize';
import { ROOT, runCli } from '../helpers/cli';
import { quantizeRow } from '../helpers/int8';
import { expectOnnxChecked } from '../helpers/onnx-checker';
import { tmpDir } from '../helpers/tmp';

const tmp = tmpDir();
const tokenizer = CharTokenizer.fromText('abcdefghij klmnop.');
const BATCHES = [1, 3, 64];

// V = 18: an embedding of 7 feeds layer 0 through int8 products, one of 16 (V <= 2E) through the
// table of each token's pre-activations, as the native steps do.
const cases: [string, LanguageModelConfig][] = [
  ['lstm', { cell: 'lstm' }],
  ['gru', { cell: 'gru' }],
  ['rnn-tanh', { cell: 'rnn', nonlinearity: 'tanh' }],
  ['rnn-relu', { cell: 'rnn', nonlinearity: 'relu' }],
  ['lstm folded embedding', { cell: 'lstm', embeddingSize: 16 }],
  ['gru folded embedding', { cell: 'gru', embeddingSize: 16 }],
  ['lstm 3 layers residual', { cell: 'lstm', numLayers: 3, residual: true }],
  ['gru tied weights', { cell: 'gru', embeddingSize: 16, tieWeights: true }],
  [
    'rnn-tanh tied weights, V > 2E',
    { cell: 'rnn', embeddingSize: 8, hiddenSize: 8, tieWeights: true },
  ],
];

function int8Model(config: LanguageModelConfig): LanguageModel {
  return new LanguageModel({
    tokenizer,
    hiddenSize: 16,
    embeddingSize: 7,
    numLayers: 2,
    seed: 11,
    ...config,
  }).quantize('int8');
}

const fileOf = (name: string) => path.join(tmp, `${name.replace(/[ ,>]+/g, '-')}.onnx`);

beforeAll(async () => {
  for (const [name, config] of cases) {
    await exportOnnx(int8Model(config), fileOf(name), { kind: 'step' });
  }
});

/** One native int8 step of rows fed `ids` from state h (c): the state after it, greedy tokens. */
function nativeStep(
  model: LanguageModel,
  ids: Int32Array,
  h: Float32Array,
  c: Float32Array | null,
) {
  const B = ids.length;
  const loop = new native.TokenLoop(model.nativeWeights());
  const rows = Int32Array.from({ length: B }, (_, b) => b);
  const options = {
    maxTokens: 2,
    seed: 0,
    rowOffset: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
    repetitionPenalty: 1,
    noRepeatNgramSize: 0,
  };
  const offsets = Int32Array.from({ length: B + 1 }, (_, b) => b);
  loop.add(rows, { tokens: ids, offsets }, options, null, 0);
  loop.writeState(rows, h, c);
  const step = loop.run(1, 1, B);
  expect(Array.from(step.rows)).toEqual(Array.from(rows));
  const hT = new Float32Array(h.length);
  const cT = c ? new Float32Array(c.length) : null;
  loop.readState(rows, hT, cT);
  return { h: hT, c: cT, tokens: step.tokens };
}

describe.each(cases)('int8 ONNX step: %s', (name, config) => {
  const model = int8Model(config);
  const { numLayers: L, hiddenSize: H, vocabSize: V } = model.spec;
  const W = model.decoder.weight.data;
  const wScales = model.quantization!.scales['decoder.weight'];
  const wq = int8Values(W, wScales);
  const bias = model.decoder.bias?.data ?? new Float32Array(V);

  it('matches the native int8 step at batch 1, 3 and 64: state, greedy token, logits', async () => {
    const session = await ort.InferenceSession.create(fileOf(name));
    for (const B of BATCHES) {
      const rng = new Random(B);
      const ids = Int32Array.from({ length: B }, () => Math.floor(rng.uniform() * V));
      const h = new Float32Array(L * B * H);
      rng.fillUniform(h, -1, 1);
      const c = model.spec.cell === 'lstm' ? new Float32Array(L * B * H) : null;
      if (c) rng.fillUniform(c, -1, 1);
      const feeds: Record<string, ort.Tensor> = {
        tokens: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, B]),
        h0: new ort.Tensor('float32', h, [L, B, H]),
      };
      if (c) feeds.c0 = new ort.Tensor('float32', c, [L, B, H]);
      const got = await session.run(feeds);
      const want = nativeStep(model, ids, h, c);

      // The same int32 sums and float steps in another order: float32 roundings apart, except in
      // a row where some activation lies within that rounding of a half step (x / scale = k + 0.5):
      // there one q differs by 1, moving the row's products by scale_a * |w| (about 1e-3 here).
      const gotH = got.hT.data as Float32Array;
      const gotC = c ? (got.cT.data as Float32Array) : null;
      const flipped = new Set<number>();
      for (let i = 0; i < gotH.length; i++) {
        const d = Math.max(
          Math.abs(gotH[i] - want.h[i]),
          gotC ? Math.abs(gotC[i] - want.c![i]) : 0,
        );
        if (d > 2e-6) flipped.add(Math.floor(i / H) % B);
        expect(d).toBeLessThan(5e-3);
      }
      // Measured: one row of 64 in one case, none elsewhere.
      expect(flipped.size).toBeLessThanOrEqual(B === 64 ? 2 : 0);
      const logits = got.logits.data as Float32Array;
      expect(got.logits.dims).toEqual([1, B, V]);

      // The step's output y (the top layer's h, plus the layers below when residual).
      const y = new Float32Array(B * H);
      for (let l = 0; l < L; l++) {
        const hl = gotH.subarray(l * B * H, (l + 1) * B * H);
        for (let i = 0; i < y.length; i++) {
          y[i] = model.spec.residual && l > 0 ? y[i] + hl[i] : hl[i];
        }
      }
      let int8Worst = 0;
      for (let b = 0; b < B; b++) {
        const row = y.subarray(b * H, (b + 1) * H);
        const a = quantizeRow(row);
        let best = 0;
        for (let v = 0; v < V; v++) {
          let sum = 0;
          let float = bias[v];
          let bound = 0;
          for (let k = 0; k < H; k++) {
            sum += a.q[k] * wq[v * H + k];
            float += row[k] * W[v * H + k];
            bound += (Math.abs(W[v * H + k]) * a.scale) / 2;
          }
          const got8 = logits[b * V + v];
          const int8 = Math.fround(a.scale * wScales[v]) * sum + bias[v];
          int8Worst = Math.max(int8Worst, Math.abs(got8 - int8));
          // The weights are exactly q * scale: only the activations' rounding separates int8
          // from the float32 product (docs/quantization.md's bound), plus float32 rounding.
          expect(Math.abs(got8 - float)).toBeLessThanOrEqual(bound + 1e-5);
          if (got8 > logits[b * V + best]) best = v;
        }
        if (!flipped.has(b)) expect(best, `row ${b}`).toBe(want.tokens[b]);
      }
      expect(int8Worst).toBeLessThan(1e-5);
    }
    await session.release();
  });
});

describe('int8 ONNX export', () => {
  it('every file passes the reference checker (python3-onnx, full_check)', async () => {
    const opset14 = path.join(tmp, 'opset14.onnx');
    await exportOnnx(int8Model({ cell: 'gru' }), opset14, { kind: 'step', opset: 14 });
    expectOnnxChecked([...cases.map(([name]) => fileOf(name)), opset14]);
  });

  it('holds int8 weights, integer products and no float recurrent operators', () => {
    const model = int8Model({ cell: 'lstm', embeddingSize: 16 });
    const proto = onnx.ModelProto.decode(buildOnnx(model, { kind: 'step' }));
    const graph = proto.graph!;
    const types = Object.fromEntries(graph.initializer.map((t) => [t.name, t.dataType]));
    const { INT8, FLOAT } = onnx.TensorProto.DataType;
    for (const l of [0, 1]) {
      expect(types[`rnn.weight_ih_l${l}`]).toBe(INT8);
      expect(types[`rnn.weight_hh_l${l}`]).toBe(INT8);
      expect(types[`rnn.weight_hh_l${l}.scale`]).toBe(FLOAT);
    }
    expect(types['decoder.weight']).toBe(INT8);
    const ops = new Set(graph.node.map((n) => n.opType));
    expect(ops.has('MatMulInteger')).toBe(true);
    for (const op of ['LSTM', 'GRU', 'RNN', 'Gemm']) expect(ops.has(op)).toBe(false);
    const meta = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
    expect(meta.weights).toBe('int8');
    expect(meta.kind).toBe('step');
  });

  it('is about a quarter of the float32 export of the same weights', async () => {
    const float = new LanguageModel({ tokenizer, hiddenSize: 256, embeddingSize: 32, seed: 2 });
    const int8 = float.quantize('int8');
    const a = buildOnnx(float, { kind: 'step' }).length;
    const b = buildOnnx(int8, { kind: 'step' }).length;
    // Matrices 4x smaller; the float embedding, biases and a scale per row add the rest.
    expect(b / a).toBeLessThan(0.27);
    expect(b / a).toBeGreaterThan(0.25);
  });

  it('refuses a sequence model of int8 weights; bf16 exports as float32 values', () => {
    const model = int8Model({ cell: 'lstm' });
    expect(() => buildOnnx(model, { kind: 'sequence' })).toThrow(
      /kind 'sequence': an int8 model exports as a step model only \(kind 'step'\)/,
    );
    const bf16 = new LanguageModel({ tokenizer, hiddenSize: 16, seed: 3 }).quantize('bf16');
    const proto = onnx.ModelProto.decode(buildOnnx(bf16, { kind: 'sequence' }));
    expect(proto.graph!.node.some((n) => n.opType === 'LSTM')).toBe(true);
    expect(proto.metadataProps.find((p) => p.key === 'weights')).toBeUndefined();
  });

  it('reads back as weights int8, and refuses metadata that is not rnnkit int8', () => {
    const model = int8Model({ cell: 'gru' });
    const bytes = buildOnnx(model, { kind: 'step' });
    expect(readOnnxModel(bytes, 'm.onnx').weights).toBe('int8');
    const float = new LanguageModel({ tokenizer, hiddenSize: 8, seed: 1 });
    expect(readOnnxModel(buildOnnx(float, { kind: 'step' }), 'f.onnx').weights).toBe('float32');
    // The metadata edited (checksums dropped: files without them still load).
    const edited = (edit: Record<string, string>) => {
      const proto = onnx.ModelProto.decode(bytes);
      const meta = proto.metadataProps.filter((p) => p.key !== 'checksums');
      for (const [key, value] of Object.entries(edit))
        meta.find((p) => p.key === key)!.value = value;
      proto.metadataProps = meta;
      return onnx.ModelProto.encode(proto).finish();
    };
    expect(readOnnxModel(edited({}), 'e.onnx').weights).toBe('int8');
    expect(() => readOnnxModel(edited({ weights: 'int4' }), 'e.onnx')).toThrow(
      /e\.onnx: its metadata 'weights' is 'int4', expected float32 or int8/,
    );
    expect(() => readOnnxModel(edited({ kind: 'sequence' }), 'e.onnx')).toThrow(
      /e\.onnx: it is an int8 sequence model; rnnkit writes int8 step models only/,
    );
  });
});

describe('int8 ONNX through OnnxGenerator and the CLI', () => {
  const open: OnnxGenerator[] = [];
  afterAll(async () => {
    for (const g of open) await g.close();
  });

  it('greedy text agrees with native int8 generation of the default model', async () => {
    const model = (
      await LanguageModel.load(path.join(ROOT, 'models', 'default.safetensors'))
    ).quantize('int8');
    const file = path.join(tmp, 'default-int8.onnx');
    await exportOnnx(model, file, { kind: 'step' });
    const gen = await OnnxGenerator.load(file, { threads: 1 });
    open.push(gen);
    expect(gen.model.weights).toBe('int8');
    const corpus = fs.readFileSync(path.join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');
    const prompts = Array.from({ length: 20 }, (_, i) => {
      const at = Math.floor(corpus.length * 0.95) + i * 2000;
      return corpus.slice(at, at + 40);
    });
    const options = { prompts, maxTokens: 32, temperature: 0 };
    const want = await model.generate(options);
    const got = await gen.generate(options);
    let same = 0;
    let all = 0;
    want.forEach((s, i) => {
      for (let k = 0; k < s.length; k++) same += s[k] === got[i][k] ? 1 : 0;
      all += s.length;
    });
    // Measured: 609 of 640 tokens (95.2%), 18 of 20 rows identical. A row parts from native only
    // after a flipped activation rounding (see above) or a near tie changes one greedy token.
    expect(same / all).toBeGreaterThanOrEqual(0.9);
    expect(want.filter((w, i) => w === got[i]).length).toBeGreaterThanOrEqual(15);
  });

  it('the serving engine (rnnkit serve) runs the int8 file as native int8 generation does', async () => {
    const model = int8Model({ cell: 'lstm' });
    const engine = await BatchingGenerator.load(fileOf('lstm'), { threads: 1 });
    try {
      const options = { prompts: ['abc', 'hello', 'p', 'fed cab'], maxTokens: 24, temperature: 0 };
      expect(await engine.generate(options)).toEqual(await model.generate(options));
    } finally {
      await engine.close();
    }
  });

  it('rnnkit export writes an int8 checkpoint as an int8 step model; --kind sequence is refused', async () => {
    const saved = path.join(tmp, 'cli-int8.safetensors');
    await int8Model({ cell: 'lstm' }).save(saved);
    const out = path.join(tmp, 'cli-int8.onnx');
    const r = runCli(['export', '--model', saved, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\(step model, opset 17/);
    expect(readOnnxModel(fs.readFileSync(out), out).weights).toBe('int8');
    const bad = runCli(['export', '--model', saved, '--out', out, '--kind', 'sequence']);
    expect(bad.stderr).toMatch(/--kind sequence: an int8 model exports as a step model only/);
    expect(bad.status).toBe(2);
  });
});
