import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CharTokenizer,
  LanguageModel,
  OnnxGenerator,
  buildOnnx,
  exportOnnx,
  type CellType,
  type GenerateOptions,
} from '../../lib/index';

const corpus = 'the quick brown fox jumps over the lazy dog. ';
const tokenizer = CharTokenizer.fromText(corpus);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rnnkit-onnx-gen-'));
const prompts = ['the', 'a quick brown fox', 'z', 'over the lazy dog. the', 'fox'];

function makeModel(cell: CellType, extra = {}): LanguageModel {
  return new LanguageModel({
    tokenizer,
    cell,
    hiddenSize: 32,
    embeddingSize: 16,
    numLayers: 2,
    seed: 5,
    ...extra,
  });
}

const open: OnnxGenerator[] = [];
async function load(model: LanguageModel, kind: 'step' | 'sequence', name: string) {
  const file = path.join(tmp, `${name}.${kind}.onnx`);
  await exportOnnx(model, file, { kind });
  const g = await OnnxGenerator.load(file, { threads: 1 });
  open.push(g);
  return g;
}

afterAll(async () => {
  for (const g of open) await g.close();
});

const settings: [string, Omit<GenerateOptions, 'prompts'>][] = [
  ['greedy', { temperature: 0, maxTokens: 40 }],
  ['sampled', { temperature: 1, seed: 7, maxTokens: 40 }],
  [
    'top-k, top-p, repetition penalty, no-repeat n-grams',
    {
      temperature: 0.9,
      topK: 8,
      topP: 0.9,
      repetitionPenalty: 1.3,
      noRepeatNgramSize: 3,
      seed: 11,
      maxTokens: 40,
    },
  ],
  ['stop strings', { temperature: 1, seed: 3, maxTokens: 60, stop: ['e', 'o '] }],
  ['split batches', { temperature: 1, seed: 9, maxTokens: 20, maxBatch: 2 }],
];

describe.each([
  ['lstm', 'step'],
  ['lstm', 'sequence'],
  ['gru', 'sequence'],
  ['rnn', 'step'],
] as const)('OnnxGenerator (%s, %s model)', (cell, kind) => {
  const model = makeModel(cell, cell === 'lstm' ? { residual: true, numLayers: 3 } : {});
  let gen: OnnxGenerator;
  beforeAll(async () => {
    gen = await load(model, kind, `${cell}-match`);
  });

  it.each(settings)('%s: same text as the native LanguageModel', async (_name, options) => {
    const want = await model.generate({ prompts, ...options });
    const got = await gen.generate({ prompts, ...options });
    expect(got).toEqual(want);
    if (options.stop) {
      const stops = options.stop as string[];
      for (const text of got) expect(stops.some((s) => text.includes(s))).toBe(false);
      expect(got.some((t) => t.length < options.maxTokens!)).toBe(true);
    }
  });

  it('streams the same text that generate returns, stop excluded', async () => {
    const options = { prompt: 'the', temperature: 1, seed: 21, maxTokens: 50, stop: 'k' };
    const pieces: string[] = [];
    for await (const piece of gen.stream(options)) pieces.push(piece);
    const [whole] = await model.generate({ prompts: ['the'], ...options });
    expect(pieces.join('')).toBe(whole);
    expect(pieces.length).toBeGreaterThan(1);
  });
});

describe('OnnxGenerator', () => {
  const model = makeModel('lstm');
  let gen: OnnxGenerator;
  beforeAll(async () => {
    gen = await load(model, 'sequence', 'lstm-misc');
  });

  it('describes itself like the native model, as the onnx backend', () => {
    expect(gen.info).toEqual({ ...model.info, backend: 'onnx' });
    expect(gen.model.kind).toBe('sequence');
    expect(gen.tokenizer.toJSON()).toEqual(tokenizer.toJSON());
  });

  it('serves concurrent calls, each with its own result', async () => {
    const calls = [0, 1, 2, 3].map((seed) =>
      gen.generate({ prompts: prompts.slice(seed), seed, maxTokens: 15 }),
    );
    const wants = [0, 1, 2, 3].map((seed) =>
      model.generate({ prompts: prompts.slice(seed), seed, maxTokens: 15 }),
    );
    expect(await Promise.all(calls)).toEqual(await Promise.all(wants));
  });

  it('rejects bad options with the same errors as the native model', async () => {
    for (const bad of [
      { prompts: [] },
      { prompts: [''] },
      { prompts: ['the'], maxTokens: 0 },
      { prompts: ['the'], temperature: -1 },
      { prompts: ['the'], topK: 1000 },
      { prompts: ['the'], stop: [''] },
      { prompts: ['the'], stop: '#' },
      { prompts: ['#'] },
      { prompts: ['the'], maxBatch: 0 },
    ] as GenerateOptions[]) {
      const want = await model.generate(bad).catch((e: Error) => e);
      expect(want).toBeInstanceOf(Error);
      await expect(gen.generate(bad)).rejects.toThrow((want as Error).message);
    }
  });

  it('stops early when the signal aborts', async () => {
    const ac = new AbortController();
    const pieces = gen.stream({ prompt: 'the', maxTokens: 100000, signal: ac.signal });
    const run = (async () => {
      for await (const piece of pieces) if (piece) ac.abort();
    })();
    await expect(run).rejects.toThrow(/aborted/);
    // The worker is free again for the next call.
    expect(await gen.generate({ prompts: ['the'], maxTokens: 3, seed: 1 })).toHaveLength(1);
  });

  it('keeps the event loop responsive while a batch of 64 generates', async () => {
    const big = makeModel('lstm', { hiddenSize: 256, embeddingSize: 64 });
    const g = await load(big, 'step', 'responsive');
    let worst = 0;
    let ticks = 0;
    const start = performance.now();
    let last = start;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      ticks++;
    }, 5);
    const texts = await g.generate({ prompts: Array<string>(64).fill('the '), maxTokens: 100 });
    clearInterval(timer);
    const elapsed = performance.now() - start;
    expect(texts).toHaveLength(64);
    expect(ticks).toBeGreaterThan(5);
    // Generating on the event loop would stall the timer for the whole call; off it, its longest
    // wait is a small part of the call, however busy the machine.
    expect(worst).toBeLessThan(elapsed / 4);
  });

  it('close() ends the worker; later calls reject clearly', async () => {
    const g = await OnnxGenerator.load(path.join(tmp, 'lstm-misc.sequence.onnx'));
    await g.close();
    await expect(g.generate({ prompts: ['the'] })).rejects.toThrow(/the generator was closed/);
    await g.close();
  });
});

describe('OnnxGenerator.load on bad files', () => {
  const model = makeModel('gru', { numLayers: 1 });
  // Without its checksums, as an older export, so that every check below the checksums is reached.
  const good = () => {
    const m = onnx.ModelProto.decode(buildOnnx(model, { kind: 'step' }));
    m.metadataProps = m.metadataProps.filter((p) => p.key !== 'checksums');
    return m;
  };
  const write = (name: string, bytes: Uint8Array) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, bytes);
    return file;
  };
  const writeModel = (name: string, edit: (m: onnx.ModelProto) => void) => {
    const m = good();
    edit(m);
    return write(name, onnx.ModelProto.encode(m).finish());
  };
  const meta = (m: onnx.ModelProto, key: string, value: string | null) => {
    m.metadataProps = m.metadataProps.filter((p) => p.key !== key);
    if (value !== null) m.metadataProps.push(onnx.StringStringEntryProto.create({ key, value }));
  };

  it.each([
    ['a missing file', () => path.join(tmp, 'nope.onnx'), /cannot read .*nope\.onnx/],
    [
      'an empty file',
      () => write('empty.onnx', new Uint8Array(0)),
      /empty\.onnx: the file is empty/,
    ],
    [
      'a truncated file',
      () => {
        const bytes = buildOnnx(model, { kind: 'step' });
        return write('truncated.onnx', bytes.subarray(0, bytes.length - 50));
      },
      /truncated\.onnx: not a valid ONNX model/,
    ],
    [
      'random bytes',
      () =>
        write(
          'random.onnx',
          Uint8Array.from({ length: 4096 }, (_, i) => (i * 193 + 7) % 251),
        ),
      /random\.onnx: not (a valid ONNX|an ONNX) model/,
    ],
    [
      'a model without rnnkit metadata',
      () => writeModel('foreign.onnx', (m) => (m.metadataProps = [])),
      /foreign\.onnx: not an rnnkit model/,
    ],
    [
      'a model whose spec is not JSON',
      () => writeModel('bad-spec.onnx', (m) => meta(m, 'spec', '{not json')),
      /bad-spec\.onnx: its metadata 'spec' is invalid/,
    ],
    [
      'a model whose spec has a bad cell',
      () =>
        writeModel('bad-cell.onnx', (m) =>
          meta(m, 'spec', JSON.stringify({ ...model.spec, cell: 'transformer' })),
        ),
      /bad-cell\.onnx: its metadata 'spec' is invalid: 'cell'/,
    ],
    [
      'a model whose tokenizer disagrees with its vocabulary',
      () =>
        writeModel('bad-tok.onnx', (m) =>
          meta(m, 'tokenizer', JSON.stringify(CharTokenizer.fromText('ab').toJSON())),
        ),
      /bad-tok\.onnx: its metadata 'tokenizer' is invalid: it has 3 tokens/,
    ],
    [
      'a model exported without a tokenizer',
      () => writeModel('no-tok.onnx', (m) => meta(m, 'tokenizer', null)),
      /no-tok\.onnx: the model was exported without a tokenizer/,
    ],
    [
      'unexpected inputs',
      () => writeModel('inputs.onnx', (m) => (m.graph!.input[1].name = 'state')),
      /inputs\.onnx: its inputs are \[tokens, state\], expected \[tokens, h0\]/,
    ],
    [
      'unexpected outputs',
      () => writeModel('outputs.onnx', (m) => m.graph!.output.pop()),
      /outputs\.onnx: its outputs are \[logits\], expected \[logits, hT\]/,
    ],
    [
      'mismatched state shapes',
      () =>
        writeModel('state.onnx', (m) => {
          m.graph!.input[1].type!.tensorType!.shape!.dim![2] = { dimValue: 33 };
        }),
      /state\.onnx: input 'h0' float \[1, batch, 33\] does not match the model, expected 'h0' float \[1, batch, 32\]/,
    ],
    [
      'a fixed batch axis',
      () =>
        writeModel('fixed-batch.onnx', (m) => {
          m.graph!.input[0].type!.tensorType!.shape!.dim![1] = { dimValue: 1 };
        }),
      /fixed-batch\.onnx: input 'tokens' int64 \[1, 1\] does not match/,
    ],
    [
      'a graph onnxruntime rejects',
      () =>
        writeModel('broken-graph.onnx', (m) => {
          m.graph!.node[0].opType = 'NoSuchOp';
        }),
      /broken-graph\.onnx: onnxruntime cannot load the model/,
    ],
  ] as const)('rejects %s with one clear error', async (_what, make, message) => {
    await expect(OnnxGenerator.load(make())).rejects.toThrow(message);
  });

  it('rejects bad load options', async () => {
    const file = writeModel('ok.onnx', () => undefined);
    await expect(OnnxGenerator.load(file, { threads: 0 })).rejects.toThrow(/threads/);
    await expect(OnnxGenerator.load(file, { maxBatch: -1 })).rejects.toThrow(/maxBatch/);
    await expect(OnnxGenerator.load('')).rejects.toThrow(/file must be a non-empty path/);
  });
});
