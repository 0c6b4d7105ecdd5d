// Parity with PyTorch: the fixtures in test/fixtures/ (written by scripts/make-torch-fixtures.py,
// `npm run fixtures`) hold nn.RNN/LSTM/GRU weights, inputs, outputs and float64 gradients; rnnkit's
// layers, given the same weights through loadPyTorch, must reproduce all of them. The language
// model is checked both ways: a PyTorch state dict loads into LanguageModel, and LanguageModel's
// export loads into the same PyTorch module (run by /usr/bin/python3) with the same logits.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GRU,
  LanguageModel,
  LSTM,
  readSafetensors,
  RNN,
  type LanguageModelConfig,
  type RecurrentStack,
  type RecurrentState,
} from '../../lib/index';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const PYTHON = '/usr/bin/python3';
const TOL = 1e-4;

type Loaded = Awaited<ReturnType<typeof readSafetensors>>;

const work = mkdtempSync(path.join(tmpdir(), 'rnnkit-parity-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function f32(file: Loaded, name: string): Float32Array {
  const t = file.tensors[name];
  if (!t) throw new Error(`fixture has no tensor '${name}' (run \`npm run fixtures\`)`);
  if (t.dtype !== 'F32') throw new Error(`fixture tensor '${name}' is ${t.dtype}, expected F32`);
  return t.data;
}

/** Every element within TOL (absolute) + TOL (relative); reports the worst element. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const ratio = Number.isFinite(a) ? Math.abs(a - e) / (TOL + TOL * Math.abs(e)) : Infinity;
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  const detail = at < 0 ? '' : ` (worst [${at}]: got ${actual[at]}, expected ${expected[at]})`;
  expect(worst, `${what} differs from PyTorch beyond ${TOL}${detail}`).toBeLessThanOrEqual(1);
}

function sizes(file: Loaded) {
  const m = file.metadata;
  const n = (k: string) => {
    const v = Number(m[k]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`fixture metadata '${k}' is ${m[k]}`);
    return v;
  };
  return {
    cell: m.cell,
    nonlinearity: m.nonlinearity as 'tanh' | 'relu',
    I: n('input_size'),
    H: n('hidden_size'),
    L: n('num_layers'),
    T: n('steps'),
    B: n('batch'),
  };
}

function build(file: Loaded): RecurrentStack {
  const s = sizes(file);
  const options = { inputSize: s.I, hiddenSize: s.H, numLayers: s.L, seed: 1 };
  if (s.cell === 'rnn') return new RNN({ ...options, nonlinearity: s.nonlinearity });
  if (s.cell === 'lstm') return new LSTM(options);
  if (s.cell === 'gru') return new GRU(options);
  throw new Error(`fixture metadata has unknown cell '${s.cell}'`);
}

const WEIGHT_NAMES = [
  ['weightIh', 'weight_ih'],
  ['weightHh', 'weight_hh'],
  ['biasIh', 'bias_ih'],
  ['biasHh', 'bias_hh'],
] as const;

const CASES = [
  'rnn-tanh-l1',
  'rnn-tanh-l2',
  'rnn-relu-l1',
  'rnn-relu-l2',
  'lstm-l1',
  'lstm-l2',
  'gru-l1',
  'gru-l2',
  'rnn-tanh-l2-padded',
  'rnn-relu-l2-padded',
  'lstm-l2-padded',
  'gru-l2-padded',
];

describe.each(CASES)('PyTorch parity: %s', (name) => {
  let file: Loaded;
  let stack: RecurrentStack;
  let isLstm: boolean;
  let lengths: Int32Array | undefined;

  beforeAll(async () => {
    file = await readSafetensors(path.join(FIXTURES, `torch-${name}.safetensors`));
    stack = build(file);
    isLstm = sizes(file).cell === 'lstm';
    const l = file.tensors.lengths;
    if (name.endsWith('-padded')) {
      expect(l?.dtype, 'a padded fixture stores lengths as I32').toBe('I32');
      lengths = l.data as Int32Array;
    } else {
      expect(l, 'only padded fixtures store lengths').toBeUndefined();
    }
  });

  function initialState(): RecurrentState {
    return isLstm ? { h: f32(file, 'h0'), c: f32(file, 'c0') } : { h: f32(file, 'h0') };
  }

  function run(training: boolean) {
    const { T, B } = sizes(file);
    return stack.forward(f32(file, 'x'), {
      steps: T,
      batch: B,
      lengths,
      state: initialState(),
      training,
    });
  }

  it('loadPyTorch takes the state dict and toPyTorch gives back the same tensors', () => {
    const before = stack.weights.data.slice();
    const f32Tensors: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const [k, t] of Object.entries(file.tensors)) if (t.dtype === 'F32') f32Tensors[k] = t;
    stack.loadPyTorch(f32Tensors);
    expect(stack.weights.data).not.toEqual(before);
    const out = stack.toPyTorch();
    const names = Object.keys(file.tensors).filter((k) => /^(weight|bias)_(ih|hh)_l\d+$/.test(k));
    expect(Object.keys(out).sort()).toEqual(names.sort());
    expect(names.length).toBe(4 * sizes(file).L);
    for (const n of names) {
      expect(out[n].shape, n).toEqual(file.tensors[n].shape);
      expect(out[n].data, n).toEqual(f32(file, n));
    }
    // toPyTorch returns copies: changing them leaves the layer alone.
    out[names[0]].data.fill(123);
    expect(stack.toPyTorch()[names[0]].data).toEqual(f32(file, names[0]));
  });

  it('forward gives PyTorch outputs and final states', () => {
    for (const training of [true, false]) {
      const { output, state } = run(training);
      expectClose(output, f32(file, 'y'), `y (training: ${training})`);
      expectClose(state.h, f32(file, 'hT'), `hT (training: ${training})`);
      if (isLstm) expectClose(state.c!, f32(file, 'cT'), `cT (training: ${training})`);
      else expect(state.c).toBeUndefined();
    }
    if (lengths) {
      // Padded steps are exactly zero, as pad_packed_sequence makes them.
      const { T, B, H } = sizes(file);
      const { output } = run(false);
      for (let t = 0; t < T; t++)
        for (let b = 0; b < B; b++)
          if (t >= lengths[b])
            expect(
              output.subarray((t * B + b) * H, (t * B + b + 1) * H).every((v) => v === 0),
            ).toBe(true);
    }
  });

  it('backward gives PyTorch gradients for x, the initial state and every weight', () => {
    stack.zeroGrad();
    run(true);
    const gy = f32(file, 'gy');
    const dState: RecurrentState = isLstm
      ? { h: f32(file, 'ghT'), c: f32(file, 'gcT') }
      : { h: f32(file, 'ghT') };
    const { dx, dState: d0 } = stack.backward(gy, dState);
    expectClose(dx, f32(file, 'grad.x'), 'dx');
    expectClose(d0.h, f32(file, 'grad.h0'), 'dh0');
    if (isLstm) expectClose(d0.c!, f32(file, 'grad.c0'), 'dc0');
    let checked = 0;
    for (let l = 0; l < stack.numLayers; l++) {
      const grads = stack.layerWeights(l, stack.weights.grad);
      for (const [ours, theirs] of WEIGHT_NAMES) {
        expectClose(grads[ours], f32(file, `grad.${theirs}_l${l}`), `grad.${theirs}_l${l}`);
        checked++;
      }
    }
    expect(checked).toBe(4 * sizes(file).L);
    // Gradients add up: a second backward of the same forward doubles them.
    const once = stack.weights.grad.slice();
    run(true);
    stack.backward(gy, dState);
    expectClose(
      stack.weights.grad,
      once.map((g) => 2 * g),
      'weights.grad after two backwards',
    );
  });
});

describe('PyTorch parity: language model', () => {
  const lmPath = path.join(FIXTURES, 'torch-lm.safetensors');
  let expected: Loaded;
  let config: LanguageModelConfig;

  beforeAll(async () => {
    expected = await readSafetensors(path.join(FIXTURES, 'torch-lm-expected.safetensors'));
    config = JSON.parse(expected.metadata.config) as LanguageModelConfig;
  });

  function ids(): { ids: Int32Array; steps: number; batch: number } {
    const t = expected.tensors.ids;
    expect(t.dtype).toBe('I32');
    return { ids: t.data as Int32Array, steps: t.shape[0], batch: t.shape[1] };
  }

  it('LanguageModel.fromPyTorch gives the logits PyTorch computed', async () => {
    const model = await LanguageModel.fromPyTorch(lmPath, config);
    const tokens = ids();
    const { logits } = model.forward(tokens);
    expect(expected.tensors.logits.shape).toEqual([tokens.steps, tokens.batch, config.vocabSize]);
    expectClose(logits, f32(expected, 'logits'), 'LM logits');
    // The same ids given as [T][B] arrays give the same logits.
    const nested = Array.from({ length: tokens.steps }, (_, t) =>
      Array.from(tokens.ids.subarray(t * tokens.batch, (t + 1) * tokens.batch)),
    );
    expect(model.forward(nested).logits).toEqual(logits);
  });

  it('fromPyTorch then toPyTorch writes the state dict back unchanged', async () => {
    const model = await LanguageModel.fromPyTorch(lmPath, config);
    const out = path.join(work, 'roundtrip.safetensors');
    await model.toPyTorch(out);
    const original = await readSafetensors(lmPath);
    const written = await readSafetensors(out);
    expect(Object.keys(written.tensors).sort()).toEqual(Object.keys(original.tensors).sort());
    for (const [name, t] of Object.entries(original.tensors)) {
      expect(written.tensors[name].dtype, name).toBe('F32');
      expect(written.tensors[name].shape, name).toEqual(t.shape);
      expect(written.tensors[name].data, name).toEqual(t.data);
    }
  });

  it('toPyTorch output loads into the PyTorch module (strict) and gives the same logits', async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
    });
    if (probe.status !== 0) {
      throw new Error(
        `this test runs PyTorch through ${PYTHON}, which cannot import torch ` +
          `(install python3-torch): ${probe.error?.message ?? probe.stderr.trim()}`,
      );
    }
    const tokens = ids();
    // Fresh random models (not the fixture): what Python sees is only what toPyTorch wrote.
    const models: [string, LanguageModelConfig][] = [
      ['lstm2', { ...config, seed: 11 }],
      [
        'gru1-tied',
        { vocabSize: 11, embeddingSize: 7, hiddenSize: 7, cell: 'gru', seed: 12, tieWeights: true },
      ],
      [
        'rnn-relu2',
        {
          vocabSize: 11,
          embeddingSize: 4,
          hiddenSize: 5,
          numLayers: 2,
          cell: 'rnn',
          nonlinearity: 'relu',
          seed: 13,
        },
      ],
    ];
    const jobs = [];
    const ours: Float32Array[] = [];
    for (const [name, cfg] of models) {
      const model = new LanguageModel(cfg);
      const file = path.join(work, `${name}.safetensors`);
      await model.toPyTorch(file);
      ours.push(model.forward(tokens).logits);
      const s = model.spec;
      jobs.push({
        path: file,
        cell: s.cell,
        nonlinearity: s.nonlinearity,
        vocab: s.vocabSize,
        embed: s.embeddingSize,
        hidden: s.hiddenSize,
        layers: s.numLayers,
      });
    }
    const request = { jobs, ids: Array.from(tokens.ids), steps: tokens.steps, batch: tokens.batch };
    const r = spawnSync(PYTHON, ['-c', PYTORCH_RUNNER], {
      input: JSON.stringify(request),
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    expect(r.status, `python failed:\n${r.stderr}`).toBe(0);
    const theirs = JSON.parse(r.stdout) as number[][];
    expect(theirs.length).toBe(models.length);
    theirs.forEach((logits, k) => expectClose(ours[k], logits, `${models[k][0]} logits`));
  });
});

// Reads safetensors by hand (no `safetensors` package), loads each file into the PyTorch module
// rnnkit's LanguageModel mirrors with strict=True, and prints every model's logits as JSON.
const PYTORCH_RUNNER = String.raw`
import json, struct, sys
import torch
from torch import nn

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        data = bytearray(raw[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(data, dtype=torch.float32).reshape(info["shape"]).clone()
    return out

class TinyLM(nn.Module):
    def __init__(self, job):
        super().__init__()
        self.embedding = nn.Embedding(job["vocab"], job["embed"])
        if job["cell"] == "lstm":
            self.rnn = nn.LSTM(job["embed"], job["hidden"], num_layers=job["layers"])
        elif job["cell"] == "gru":
            self.rnn = nn.GRU(job["embed"], job["hidden"], num_layers=job["layers"])
        else:
            self.rnn = nn.RNN(job["embed"], job["hidden"], num_layers=job["layers"],
                              nonlinearity=job["nonlinearity"])
        self.decoder = nn.Linear(job["hidden"], job["vocab"])

    def forward(self, ids):
        out, _ = self.rnn(self.embedding(ids))
        return self.decoder(out)

request = json.load(sys.stdin)
ids = torch.tensor(request["ids"], dtype=torch.long).reshape(request["steps"], request["batch"])
results = []
for job in request["jobs"]:
    model = TinyLM(job)
    model.load_state_dict(read_safetensors(job["path"]), strict=True)
    with torch.no_grad():
        results.append(model.double()(ids).flatten().tolist())
print(json.dumps(results))
`;
