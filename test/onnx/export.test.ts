import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli';
import { expectOnnxChecked } from '../helpers/onnx-checker';
import {
  CharTokenizer,
  LanguageModel,
  Random,
  buildOnnx,
  exportOnnx,
  type LanguageModelConfig,
  type RecurrentState,
} from '../../lib/index';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-onnx-export-'));
const tokenizer = CharTokenizer.fromText('abcdefghij klmnop.');
const KINDS = ['step', 'sequence'] as const;
const BATCHES = [1, 3, 64];

interface Case {
  name: string;
  config: LanguageModelConfig;
  opset?: number;
}

const cells: [string, LanguageModelConfig][] = [
  ['lstm', { cell: 'lstm' }],
  ['gru', { cell: 'gru' }],
  ['rnn-tanh', { cell: 'rnn', nonlinearity: 'tanh' }],
  ['rnn-relu', { cell: 'rnn', nonlinearity: 'relu' }],
];
const cases: Case[] = cells.flatMap(([cell, c]) => [
  { name: `${cell} 1 layer`, config: { ...c, numLayers: 1, embeddingSize: 7 } },
  { name: `${cell} 2 layers`, config: { ...c, numLayers: 2, embeddingSize: 7 } },
  {
    name: `${cell} 3 layers residual`,
    config: { ...c, numLayers: 3, embeddingSize: 16, residual: true },
  },
  {
    name: `${cell} 2 layers opset 14`,
    config: { ...c, numLayers: 2, embeddingSize: 7 },
    opset: 14,
  },
]);
cases.push({
  name: 'lstm tied weights',
  config: { cell: 'lstm', numLayers: 2, embeddingSize: 16, tieWeights: true },
});

function makeModel(config: LanguageModelConfig): LanguageModel {
  return new LanguageModel({ tokenizer, hiddenSize: 16, seed: 11, ...config });
}

const fileOf = (c: Case, kind: string) =>
  path.join(tmp, `${c.name.replace(/ /g, '-')}.${kind}.onnx`);

beforeAll(async () => {
  for (const c of cases) {
    for (const kind of KINDS) {
      await exportOnnx(makeModel(c.config), fileOf(c, kind), { kind, opset: c.opset });
    }
  }
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function randomInputs(model: LanguageModel, steps: number, batch: number, seed: number) {
  const rng = new Random(seed);
  const V = model.spec.vocabSize;
  const ids = new Int32Array(steps * batch).map(() => Math.floor(rng.uniform() * V));
  const state: RecurrentState = model.zeroState(batch);
  rng.fillUniform(state.h, -1, 1);
  if (state.c) rng.fillUniform(state.c, -1, 1);
  return { ids, state };
}

describe.each(cases)('ONNX export: $name', (c) => {
  it.each(KINDS)('%s model matches native logits and states at batch 1, 3 and 64', async (kind) => {
    const model = makeModel(c.config);
    const session = await ort.InferenceSession.create(fileOf(c, kind));
    const { numLayers: L, hiddenSize: H } = model.spec;
    const steps = kind === 'step' ? 1 : 5;
    for (const batch of BATCHES) {
      const { ids, state } = randomInputs(model, steps, batch, batch);
      const want = model.forward({ ids, steps, batch }, state);
      const feeds: Record<string, ort.Tensor> = {
        tokens: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [steps, batch]),
        h0: new ort.Tensor('float32', state.h, [L, batch, H]),
      };
      if (state.c) feeds.c0 = new ort.Tensor('float32', state.c, [L, batch, H]);
      const got = await session.run(feeds);
      expect(got.logits.dims).toEqual([steps, batch, model.spec.vocabSize]);
      expect(got.hT.dims).toEqual([L, batch, H]);
      expect(maxDiff(got.logits.data as Float32Array, want.logits)).toBeLessThan(1e-4);
      expect(maxDiff(got.hT.data as Float32Array, want.state.h)).toBeLessThan(1e-4);
      if (want.state.c) {
        expect(maxDiff(got.cT.data as Float32Array, want.state.c)).toBeLessThan(1e-4);
      } else {
        expect(session.outputNames).not.toContain('cT');
      }
    }
    await session.release();
  });
});

describe('ONNX export', () => {
  it('every exported file passes the reference checker (python3-onnx, full_check)', () => {
    const files = cases.flatMap((c) => KINDS.map((k) => fileOf(c, k)));
    expectOnnxChecked(files);
  });

  it('writes IR 8, the opset, dynamic axes and the rnnkit metadata', () => {
    const model = makeModel({ cell: 'gru', numLayers: 2 });
    const proto = onnx.ModelProto.decode(buildOnnx(model, { kind: 'sequence', opset: 15 }));
    expect(Number(proto.irVersion)).toBe(8);
    expect(proto.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 15]]);
    const meta = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
    expect(meta.format).toBe('rnnkit');
    expect(meta.kind).toBe('sequence');
    expect(meta.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(JSON.parse(meta.spec)).toEqual(model.spec);
    expect(JSON.parse(meta.tokenizer)).toEqual(tokenizer.toJSON());
    const dims = (v: onnx.IValueInfoProto) =>
      v.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue));
    const graph = proto.graph!;
    expect(graph.input.map((v) => [v.name, dims(v)])).toEqual([
      ['tokens', ['time', 'batch']],
      ['h0', [2, 'batch', 16]],
    ]);
    expect(graph.output.map((v) => [v.name, dims(v)])).toEqual([
      ['logits', ['time', 'batch', tokenizer.size]],
      ['hT', [2, 'batch', 16]],
    ]);
    const ops = new Set(graph.node.map((n) => n.opType));
    expect([...ops].sort()).toEqual(
      ['Concat', 'GRU', 'Gather', 'Gemm', 'Reshape', 'Shape', 'Split', 'Squeeze'].sort(),
    );
    const gru = graph.node.find((n) => n.opType === 'GRU')!;
    const attr = Object.fromEntries(gru.attribute.map((a) => [a.name, Number(a.i)]));
    expect(attr).toMatchObject({ linear_before_reset: 1, layout: 0, hidden_size: 16 });
  });

  it('exports a model without a tokenizer (numeric use) without tokenizer metadata', () => {
    const model = new LanguageModel({ vocabSize: 9, hiddenSize: 8, seed: 1 });
    const proto = onnx.ModelProto.decode(buildOnnx(model, { kind: 'step' }));
    expect(proto.metadataProps.map((p) => p.key)).not.toContain('tokenizer');
  });

  it('rejects bad options and leaves an existing file untouched when writing fails', async () => {
    const model = makeModel({ cell: 'lstm' });
    const file = path.join(tmp, 'keep.onnx');
    await exportOnnx(model, file, { kind: 'step' });
    const before = fs.readFileSync(file);
    const bad = (options: object) => exportOnnx(model, file, options as { kind: 'step' });
    await expect(bad({ kind: 'whole' })).rejects.toThrow(/kind must be 'step' or 'sequence'/);
    await expect(bad({})).rejects.toThrow(/kind must be 'step' or 'sequence', got undefined/);
    await expect(bad({ kind: 'step', opset: 13 })).rejects.toThrow(/opset must be .* \[14, 17\]/);
    await expect(bad({ kind: 'step', opset: 18 })).rejects.toThrow(/opset/);
    await expect(exportOnnx({} as LanguageModel, file, { kind: 'step' })).rejects.toThrow(
      /model must be a LanguageModel/,
    );
    await expect(
      exportOnnx(model, path.join(tmp, 'no-such-dir', 'x.onnx'), { kind: 'step' }),
    ).rejects.toThrow(/cannot write .*no-such-dir/);
    fs.mkdirSync(path.join(tmp, 'a-dir.onnx'));
    await expect(exportOnnx(model, path.join(tmp, 'a-dir.onnx'), { kind: 'step' })).rejects.toThrow(
      /cannot write/,
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('rnnkit export (CLI)', () => {
  const run = (...args: string[]) => runCli(['export', ...args]);

  it('exports a saved model to an .onnx file that onnxruntime loads', async () => {
    const model = makeModel({ cell: 'gru', numLayers: 2 });
    const saved = path.join(tmp, 'cli-model.safetensors');
    await model.save(saved);
    const out = path.join(tmp, 'cli-model.onnx');
    const r = run('--model', saved, '--out', out, '--kind', 'step', '--opset', '15');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /exported LanguageModel\(.*GRU.* to .*cli-model\.onnx \(step model, opset 15/,
    );
    const session = await ort.InferenceSession.create(out);
    expect(session.inputNames).toEqual(['tokens', 'h0']);
    await session.release();
    const proto = onnx.ModelProto.decode(fs.readFileSync(out));
    expect(proto.metadataProps.find((p) => p.key === 'kind')?.value).toBe('step');
    expect(run('--help').stdout).toMatch(/--kind step\|sequence/);
  });

  it.each([
    [[], /export needs --model FILE and --out FILE\.onnx/, 2],
    [
      ['--model', 'm.safetensors', '--out', 'x.onnx', '--kind', 'whole'],
      /--kind must be step or sequence, got 'whole'/,
      2,
    ],
    [
      ['--model', 'm.safetensors', '--out', 'x.onnx', '--opset', '13'],
      /--opset must be 14 to 17, got 13/,
      2,
    ],
    [
      ['--model', 'm.safetensors', '--out', 'x.onnx', '--opset', 'new'],
      /--opset must be an integer/,
      2,
    ],
    [
      ['--model', 'm.safetensors', '--out', '/no/such/dir/x.onnx'],
      /output folder .* does not exist/,
      2,
    ],
    [
      ['--model', '/no/such/model.safetensors', '--out', 'x.onnx'],
      /cannot read \/no\/such\/model/,
      1,
    ],
    [['--model', 'm', '--out', 'x.onnx', '--bogus'], /Unknown option '--bogus'/, 2],
  ] as const)('fails clearly on %j', (args, message, code) => {
    const r = run(...args);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(code);
  });
});
