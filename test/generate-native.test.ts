// The native generation ops called directly: lmGenerate / lmGenerateSync results and progress,
// cancellation, errors from onTokens, sampleTokens + rngInit reproducing lmGenerate from logits
// computed outside the loop, and the argument checks' messages.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

import type { LmWeights, Native, NativeGenerateOptions } from '../lib/core/native';

const native: Native = createRequire(import.meta.url)('../build/Release/rnnkit.node');

// A deterministic small model: values from a fixed linear congruential sequence.
function model(cell: LmWeights['cell'] = 'lstm', V = 13, E = 5, H = 8, L = 2): LmWeights {
  let s = 12345;
  const fill = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return (s / 2 ** 31 - 0.5) * 2 * scale;
    });
  const P = native.stackParamCount({ cell, I: E, H, L });
  return {
    cell,
    V,
    E,
    H,
    L,
    residual: false,
    embedding: fill(V * E, 1),
    stack: fill(P, 0.6),
    decoderWeight: fill(V * H, 1.5),
    decoderBias: fill(V, 0.5),
  };
}

function ragged(seqs: number[][]) {
  const offsets = new Int32Array(seqs.length + 1);
  seqs.forEach((q, i) => (offsets[i + 1] = offsets[i] + q.length));
  return { tokens: Int32Array.from(seqs.flat()), offsets };
}

const options: NativeGenerateOptions = {
  maxTokens: 12,
  temperature: 1,
  topK: 6,
  topP: 0.95,
  repetitionPenalty: 1.2,
  noRepeatNgramSize: 0,
  seed: 7,
  rowOffset: 0,
};
const prompts = ragged([[1, 2, 3], [4], [5, 6, 7, 8, 9]]);

describe('native lmGenerate', () => {
  it('resolves with the same tokens as lmGenerateSync, and onTokens sees each step', async () => {
    const w = model();
    const sync = native.lmGenerateSync(w, prompts, options, null, null);
    const seen: number[][] = [[], [], []];
    const steps: number[] = [];
    const r = await native.lmGenerate(w, prompts, options, null, null, (step, rows, tokens) => {
      steps.push(step);
      rows.forEach((row, i) => seen[row].push(tokens[i]));
    });
    expect(r.tokens).toEqual(sync.tokens);
    expect(Array.from(r.lengths)).toEqual([12, 12, 12]);
    expect(Array.from(r.finish)).toEqual([0, 0, 0]);
    expect(steps).toEqual([...Array(12).keys()]);
    for (let b = 0; b < 3; b++)
      expect(seen[b]).toEqual(Array.from(r.tokens.subarray(b * 12, b * 12 + 12)));
    for (const t of r.tokens) expect(t >= 0 && t < w.V).toBe(true);
  });

  it('drops matched stop sequences and pads with -1', () => {
    const w = model('gru');
    const free = native.lmGenerateSync(w, prompts, options, null, null);
    const stop = free.tokens[3];
    const r = native.lmGenerateSync(w, prompts, options, ragged([[stop]]), null);
    const row = Array.from(free.tokens.subarray(0, 12));
    const end = row.indexOf(stop);
    expect(r.finish[0]).toBe(1);
    expect(r.lengths[0]).toBe(end);
    expect(Array.from(r.tokens.subarray(0, 12))).toEqual([
      ...row.slice(0, end),
      ...Array(12 - end).fill(-1),
    ]);
  });

  it('stops every row when the shared cancel flag is set', async () => {
    const flag = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(flag, 0, 1);
    const r = await native.lmGenerate(model(), prompts, options, null, flag);
    expect(Array.from(r.finish)).toEqual([2, 2, 2]);
    expect(Array.from(r.lengths)).toEqual([0, 0, 0]);
  });

  it('rejects with what onTokens threw', async () => {
    const boom = new Error('boom');
    await expect(
      native.lmGenerate(model(), prompts, { ...options, maxTokens: 1000 }, null, null, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });
});

describe('native sampleTokens', () => {
  it('reproduces lmGenerate from logits computed step by step', () => {
    const w = model('rnn_tanh', 11, 4, 6, 1);
    const prompt = [3, 1, 4, 1, 5];
    const o = { ...options, maxTokens: 20, rowOffset: 4 };
    const want = native.lmGenerateSync(w, ragged([prompt]), o, null, null);

    const shape = {
      cell: w.cell,
      T: 1,
      B: 1,
      I: w.E,
      H: w.H,
      L: w.L,
      dropout: 0,
      residual: false,
      training: false,
      seed: 0,
    };
    const ws = new Float32Array(native.stackWorkspaceSize(shape));
    const x = new Float32Array(w.E);
    const y = new Float32Array(w.H);
    let h = new Float32Array(w.L * w.H);
    const logits = new Float32Array(w.V);
    const feed = (token: number) => {
      native.embeddingForward({ V: w.V, E: w.E }, w.embedding, Int32Array.of(token), x);
      const hT = new Float32Array(h.length);
      native.stackForward(shape, w.stack, x, null, h, null, y, hT, null, ws);
      h = hT;
      native.linearForward({ N: 1, I: w.H, O: w.V }, y, w.decoderWeight, w.decoderBias, logits);
    };
    prompt.forEach(feed);
    const states = native.rngInit(o.seed, o.rowOffset, 1);
    const history = [...prompt];
    const got: number[] = [];
    for (let step = 0; step < o.maxTokens; step++) {
      const before = Float32Array.from(logits);
      const [t] = native.sampleTokens(logits, { B: 1, V: w.V }, ragged([history]), o, states);
      expect(logits).toEqual(before);
      got.push(t);
      history.push(t);
      feed(t);
    }
    expect(got).toEqual(Array.from(want.tokens));
  });

  it('advances each row state by one per sampled token; greedy leaves it', () => {
    const all = native.rngInit(9, 0, 5);
    expect(native.rngInit(9, 2, 3)).toEqual(all.slice(2));
    const logits = Float32Array.from({ length: 5 * 4 }, (_, i) => Math.sin(i));
    const history = ragged([[], [1], [], [2, 3], []]);
    const states = all.slice();
    native.sampleTokens(logits, { B: 5, V: 4 }, history, { ...options, topK: 3 }, states);
    states.forEach((s, b) => expect(s).toBe(BigInt.asUintN(64, all[b] + 1n)));
    const greedy = native.sampleTokens(
      logits,
      { B: 5, V: 4 },
      history,
      { ...options, topK: 3, temperature: 0 },
      states,
    );
    states.forEach((s, b) => expect(s).toBe(BigInt.asUintN(64, all[b] + 1n)));
    for (let b = 0; b < 5; b++) {
      const row = Array.from(logits.subarray(b * 4, b * 4 + 4));
      expect(greedy[b]).toBe(row.indexOf(Math.max(...row)));
    }
  });
});

describe('native generation argument checks', () => {
  const w = model();
  type Args = Parameters<Native['lmGenerateSync']>;
  const base: Args = [w, prompts, options, null, null];
  const cases: [string, (a: Args) => unknown[], RegExp, 'TypeError' | 'RangeError'][] = [
    [
      'cell',
      (a) => [{ ...a[0], cell: 'lstmx' }, ...a.slice(1)],
      /'weights\.cell' must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got 'lstmx'/,
      'RangeError',
    ],
    ['weights', (a) => [null, ...a.slice(1)], /'weights' must be an object, got null/, 'TypeError'],
    [
      'embedding length',
      (a) => [{ ...a[0], embedding: new Float32Array(3) }, ...a.slice(1)],
      /'weights\.embedding' must be a Float32Array of length 65 \(V\*E = 13\*5\), got length 3/,
      'RangeError',
    ],
    [
      'stack type',
      (a) => [{ ...a[0], stack: [1, 2] }, ...a.slice(1)],
      /'weights\.stack' must be a Float32Array of length \d+ \(stackParamCount\(cell, E, H, L\)\), got an array/,
      'TypeError',
    ],
    [
      'decoder',
      (a) => [{ ...a[0], decoderWeight: new Float64Array(104) }, ...a.slice(1)],
      /'weights\.decoderWeight' must be a Float32Array of length 104 \(V\*H = 13\*8\), got Float64Array of length 104/,
      'TypeError',
    ],
    [
      'token range',
      (a) => [a[0], ragged([[1, 13]]), ...a.slice(2)],
      /'prompts\.tokens\[1\]' must be a token id in \[0, 13\), got 13/,
      'RangeError',
    ],
    [
      'empty prompt',
      (a) => [a[0], ragged([[1], []]), ...a.slice(2)],
      /'prompts\.offsets' must be strictly increasing \(every sequence holds at least one token\), got \[1\] = 1 and \[2\] = 1/,
      'RangeError',
    ],
    [
      'offsets start',
      (a) => [a[0], { tokens: Int32Array.of(1, 2), offsets: Int32Array.of(1, 2) }, ...a.slice(2)],
      /'prompts\.offsets\[0\]' must be 0, got 1/,
      'RangeError',
    ],
    [
      'offsets end',
      (a) => [a[0], { tokens: Int32Array.of(1, 2), offsets: Int32Array.of(0, 1) }, ...a.slice(2)],
      /'prompts\.offsets' must end at the length of 'prompts\.tokens' \(2\), got 1/,
      'RangeError',
    ],
    [
      'maxTokens',
      (a) => [a[0], a[1], { ...options, maxTokens: 1e7 }, null, null],
      /'options\.maxTokens' must be a finite number in \[1, 1000000\], got 10000000/,
      'RangeError',
    ],
    [
      'temperature',
      (a) => [a[0], a[1], { ...options, temperature: -1 }, null, null],
      /'options\.temperature' must be a finite number in \[0, /,
      'RangeError',
    ],
    [
      'topK',
      (a) => [a[0], a[1], { ...options, topK: 14 }, null, null],
      /'options\.topK' must be a finite number in \[0, 13\], got 14/,
      'RangeError',
    ],
    [
      'topP',
      (a) => [a[0], a[1], { ...options, topP: 0 }, null, null],
      /'options\.topP' must be greater than 0, got 0/,
      'RangeError',
    ],
    [
      'repetitionPenalty',
      (a) => [a[0], a[1], { ...options, repetitionPenalty: 0 }, null, null],
      /'options\.repetitionPenalty' must be greater than 0/,
      'RangeError',
    ],
    [
      'noRepeatNgramSize',
      (a) => [a[0], a[1], { ...options, noRepeatNgramSize: 1.5 }, null, null],
      /'options\.noRepeatNgramSize' must be an integer, got 1\.5/,
      'RangeError',
    ],
    [
      'seed',
      (a) => [a[0], a[1], { ...options, seed: 'x' }, null, null],
      /'options\.seed' must be a number, got a string/,
      'TypeError',
    ],
    [
      'empty stop',
      (a) => [a[0], a[1], a[2], ragged([[]]), null],
      /'stops\.offsets' must be strictly increasing/,
      'RangeError',
    ],
    [
      'cancel',
      (a) => [...a.slice(0, 4), new Int32Array(2)],
      /'cancel' must be an Int32Array of length 1/,
      'RangeError',
    ],
  ];

  for (const [what, make, message, type] of cases) {
    it(`rejects a bad ${what}`, async () => {
      const args = make(base) as Args;
      expect(() => native.lmGenerateSync(...args)).toThrow(message);
      try {
        native.lmGenerateSync(...args);
      } catch (e) {
        expect((e as Error).name).toBe(type);
        expect((e as Error).message.startsWith('lmGenerateSync: ')).toBe(true);
      }
      await expect(native.lmGenerate(...args)).rejects.toThrow(message);
    });
  }

  it('checks onTokens, sampleTokens and rngInit arguments', async () => {
    await expect(native.lmGenerate(...base, 3 as never)).rejects.toThrow(
      /'onTokens' must be a function, got the number 3/,
    );
    const logits = new Float32Array(8);
    const history = ragged([[], []]);
    const o = { ...options, topK: 0 };
    expect(() =>
      native.sampleTokens(logits, { B: 2, V: 4 }, history, o, new BigUint64Array(1)),
    ).toThrow(/'rngStates' must be a BigUint64Array of length 2 \(B\), got length 1/);
    expect(() =>
      native.sampleTokens(logits, { B: 2, V: 4 }, ragged([[]]), o, new BigUint64Array(2)),
    ).toThrow(/'history\.offsets' must have length B\+1 = 3, got 2/);
    expect(() =>
      native.sampleTokens(
        new Float32Array(7),
        { B: 2, V: 4 },
        history,
        options,
        new BigUint64Array(2),
      ),
    ).toThrow(/'logits' must be a Float32Array of length 8 \(B\*V = 2\*4\), got length 7/);
    expect(() => native.rngInit(-1, 0, 1)).toThrow(
      /'seed' must be a finite number in \[0, 9\.00719925e\+15\], got -1/,
    );
  });
});

describe('native PackedLm', () => {
  // Vocabularies of 13 (kept as an embedding) and 7 (folded into layer 0) beside E = 5.
  const cases = [
    ['lstm', 13],
    ['gru', 7],
    ['rnn_tanh', 13],
    ['lstm', 7],
  ] as const;
  for (const [cell, V] of cases) {
    it(`${cell}, V=${V}: steps as stackForward and linearForward do, logits of the wanted rows`, () => {
      const w = model(cell, V);
      const { E, H, L } = w;
      const B = 3;
      const packed = new native.PackedLm(w);
      const shape = {
        cell,
        T: 1,
        B,
        I: E,
        H,
        L,
        dropout: 0,
        residual: false,
        training: false,
        seed: 0,
      };
      const ws = new Float32Array(native.stackWorkspaceSize(shape));
      const x = new Float32Array(B * E);
      const y = new Float32Array(B * H);
      const all = new Float32Array(B * V);
      const lstm = cell === 'lstm';
      let h = Float32Array.from({ length: L * B * H }, (_, i) => Math.sin(i));
      let c = lstm ? Float32Array.from(h, (v) => v / 2) : null;
      const ph = h.slice();
      const pc = c && c.slice();
      const want = Int32Array.of(2, 0);
      for (const step of [0, 1, 2]) {
        const tokens = Int32Array.from({ length: B }, (_, b) => (b * 5 + step * 3) % V);
        native.embeddingForward({ V, E }, w.embedding, tokens, x);
        const hT = new Float32Array(h.length);
        const cT = c && new Float32Array(c.length);
        native.stackForward(shape, w.stack, x, null, h, c, y, hT, cT, ws);
        [h, c] = [hT, cT];
        native.linearForward({ N: B, I: H, O: V }, y, w.decoderWeight, w.decoderBias, all);
        const logits = new Float32Array(want.length * V);
        packed.step(tokens, ph, pc, want, logits);
        for (let i = 0; i < ph.length; i++) expect(ph[i]).toBeCloseTo(h[i], 5);
        if (c && pc) for (let i = 0; i < pc.length; i++) expect(pc[i]).toBeCloseTo(c[i], 5);
        want.forEach((b, i) => {
          for (let v = 0; v < V; v++) expect(logits[i * V + v]).toBeCloseTo(all[b * V + v], 4);
        });
      }
    });
  }

  it('rejects bad weights and step arguments, naming them', () => {
    expect(() => new native.PackedLm({ ...model(), stack: new Float32Array(3) })).toThrow(
      /PackedLm: 'weights\.stack' must be a Float32Array of length \d+/,
    );
    const packed = new native.PackedLm(model('gru'));
    const h = new Float32Array(2 * 2 * 8);
    const logits = new Float32Array(13);
    const want = Int32Array.of(1);
    const bad: [unknown[], RegExp][] = [
      [[new Int32Array(0), h, null, want, logits], /'tokens' must hold 1 to 2\^30 token ids/],
      [[Int32Array.of(1, 13), h, null, want, logits], /'tokens\[1\]' must be in \[0, 13\), got 13/],
      [
        [Int32Array.of(1, 2), h.subarray(1), null, want, logits],
        /'h' must be a Float32Array of length 32 \(L\*B\*H = 2\*2\*8\)/,
      ],
      [
        [Int32Array.of(1, 2), h, h, want, logits],
        /'c' is only for LSTM and must be null for this cell/,
      ],
      [
        [Int32Array.of(1, 2), h, null, Int32Array.of(2), logits],
        /'want\[0\]' must be a row in \[0, 2\), got 2/,
      ],
      [
        [Int32Array.of(1, 2), h, null, want, new Float32Array(12)],
        /'logits' must be a Float32Array of length 13/,
      ],
    ];
    for (const [args, message] of bad) {
      const step = packed.step.bind(packed) as (...a: unknown[]) => void;
      expect(() => step(...args)).toThrow(message);
    }
  });
});
