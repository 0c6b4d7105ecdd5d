// The native generation ops called directly: lmGenerateAsync / lmGenerate results and progress,
// cancellation, errors from onTokens, the TokenLoop reproducing lmGenerateAsync from logits computed
// outside it and from its own packed rounds (prompts in chunks, rows joining late), and the
// argument checks' messages.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

import {
  addonChoice,
  type LmWeights,
  type Native,
  type NativeGenerateOptions,
  type NativeTokenLoop,
  type TokenLoopStep,
} from '../../lib/core/native';

const native: Native = createRequire(import.meta.url)(addonChoice.file);

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

describe('native lmGenerateAsync', () => {
  it('resolves with the same tokens as lmGenerate, and onTokens sees each step', async () => {
    const w = model();
    const sync = native.lmGenerate(w, prompts, options, null, null);
    const seen: number[][] = [[], [], []];
    const steps: number[] = [];
    const r = await native.lmGenerateAsync(
      w,
      prompts,
      options,
      null,
      null,
      (step, rows, tokens) => {
        steps.push(step);
        rows.forEach((row, i) => seen[row].push(tokens[i]));
      },
    );
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
    const free = native.lmGenerate(w, prompts, options, null, null);
    const stop = free.tokens[3];
    const r = native.lmGenerate(w, prompts, options, ragged([[stop]]), null);
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
    const r = await native.lmGenerateAsync(model(), prompts, options, null, flag);
    expect(Array.from(r.finish)).toEqual([2, 2, 2]);
    expect(Array.from(r.lengths)).toEqual([0, 0, 0]);
  });

  it('rejects with what onTokens threw', async () => {
    const boom = new Error('boom');
    await expect(
      native.lmGenerateAsync(model(), prompts, { ...options, maxTokens: 1000 }, null, null, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });
});

/** Rows, prompts and options of a generation, with the tokens lmGenerate gives them. */
function reference(w: LmWeights) {
  const seqs = [[3, 1, 4, 1, 5], [9], [2, 6, 5, 3, 5, 8, 9, 7], [7, 7]];
  const o = { ...options, maxTokens: 20, rowOffset: 4, noRepeatNgramSize: 3 };
  // A stop sequence that ends one row early: the token row 2 samples fourth without stops.
  const free = native.lmGenerate(w, ragged(seqs), o, null, null);
  const stops = ragged([[2, 2], [free.tokens[2 * o.maxTokens + 3]]]);
  const want = native.lmGenerate(w, ragged(seqs), o, stops, null);
  return { seqs, o, stops, want };
}

/** Runs `loop` round by round to its end: what each row id generated, kept and why it ended. */
function drain(loop: NativeTokenLoop, round: (r: number) => TokenLoopStep, B: number, M: number) {
  const tokens = new Int32Array(B * M).fill(-1);
  const lengths = new Int32Array(B).fill(-1);
  const finish = new Int32Array(B).fill(-1);
  const count = new Int32Array(B);
  for (let r = 0; r === 0 || loop.size > 0; r++) {
    const s = round(r);
    s.rows.forEach((b, i) => (tokens[b * M + count[b]++] = s.tokens[i]));
    s.done.forEach((b, i) => {
      lengths[b] = s.lengths[i];
      finish[b] = s.finish[i];
      tokens.fill(-1, b * M + s.lengths[i], (b + 1) * M);
    });
  }
  return { tokens, lengths, finish };
}

describe('native TokenLoop', () => {
  it('reproduces lmGenerateAsync from logits computed outside it, prompts fed in chunks', () => {
    const w = model('lstm', 11, 4, 6, 2);
    const { seqs, o, stops, want } = reference(w);
    const { E, H, L, V } = w;
    const loop = new native.TokenLoop({ V, L, H, lstm: true });
    // Two calls: rows 0-1 and rows 2-3, each its own group of the prompt budget.
    loop.add(Int32Array.of(0, 1), ragged(seqs.slice(0, 2)), o, stops, 0);
    loop.add(Int32Array.of(2, 3), ragged(seqs.slice(2)), { ...o, rowOffset: 6 }, stops, 1);
    const shape = (B: number) => ({
      cell: w.cell,
      T: 1,
      B,
      I: E,
      H,
      L,
      dropout: 0,
      residual: false,
      training: false,
      seed: 0,
    });
    let planned = 0;
    const got = drain(
      loop,
      () => {
        const plan = loop.plan(2, 2, 3);
        planned += plan.rows.length;
        const n = plan.rows.length;
        const h = new Float32Array(L * n * H);
        const c = new Float32Array(L * n * H);
        loop.readState(plan.rows, h, c);
        // One token at a time through the layer kernels, each row alone.
        const logits = new Float32Array(plan.want.length * V);
        for (let k = 0; k < n; k++) {
          const rh = new Float32Array(L * H);
          const rc = new Float32Array(L * H);
          for (let l = 0; l < L; l++) {
            rh.set(h.subarray((l * n + k) * H, (l * n + k + 1) * H), l * H);
            rc.set(c.subarray((l * n + k) * H, (l * n + k + 1) * H), l * H);
          }
          const x = new Float32Array(E);
          const y = new Float32Array(H);
          const ws = new Float32Array(native.stackWorkspaceSize(shape(1)));
          for (let t = plan.offsets[k]; t < plan.offsets[k + 1]; t++) {
            native.embeddingForward({ V, E }, w.embedding, plan.tokens.subarray(t, t + 1), x);
            const hT = new Float32Array(L * H);
            const cT = new Float32Array(L * H);
            native.stackForward({
              shape: shape(1),
              params: w.stack,
              x,
              lengths: null,
              h0: rh,
              c0: rc,
              y,
              hT,
              cT,
              ws,
            });
            rh.set(hT);
            rc.set(cT);
          }
          for (let l = 0; l < L; l++) {
            h.set(rh.subarray(l * H, (l + 1) * H), (l * n + k) * H);
            c.set(rc.subarray(l * H, (l + 1) * H), (l * n + k) * H);
          }
          const i = plan.want.indexOf(k);
          if (i >= 0) {
            const out = logits.subarray(i * V, (i + 1) * V);
            native.linearForward({ N: 1, I: H, O: V }, y, w.decoderWeight, w.decoderBias, out);
          }
        }
        loop.writeState(plan.rows, h, c);
        const before = logits.slice();
        const step = loop.sample(logits);
        expect(logits).toEqual(before);
        return step;
      },
      4,
      o.maxTokens,
    );
    expect(got).toEqual(want);
    // The longest prompt (8 tokens, 2 a round) took 4 rounds to prime.
    expect(planned).toBeGreaterThan(want.lengths.reduce((a, b) => a + b, 0));
    expect(Array.from(want.finish)).toContain(1);
  });

  it('runs whole rounds on the packed weights, rows joining late, as lmGenerateAsync', () => {
    for (const cell of ['lstm', 'gru', 'rnn_relu'] as const) {
      const w = model(cell, 11, 4, 6, 2);
      const { seqs, o, stops, want } = reference(w);
      const loop = new native.TokenLoop(w);
      const got = drain(
        loop,
        (r) => {
          if (r < seqs.length) {
            loop.add(Int32Array.of(r), ragged([seqs[r]]), { ...o, rowOffset: 4 + r }, stops, r);
          }
          return loop.run(3, 2, 2);
        },
        4,
        o.maxTokens,
      );
      expect(got).toEqual(want);
    }
  });

  it('ends cancelled rows with what they generated; unknown ids change nothing', () => {
    const w = model();
    const loop = new native.TokenLoop(w);
    loop.add(Int32Array.of(10, 20), ragged([[1], [2, 3]]), options, null, 0);
    const first = loop.run(8, 8, 8);
    expect(Array.from(first.rows)).toEqual([10, 20]);
    loop.cancel(Int32Array.of(20, 99));
    const second = loop.run(8, 8, 8);
    expect(Array.from(second.rows)).toEqual([10]);
    expect(Array.from(second.done)).toEqual([20]);
    expect(Array.from(second.lengths)).toEqual([1]);
    expect(Array.from(second.finish)).toEqual([2]);
    expect(Array.from(loop.ids())).toEqual([10]);
  });
});

describe('native generation argument checks', () => {
  const w = model();
  type Args = Parameters<Native['lmGenerate']>;
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
      expect(() => native.lmGenerate(...args)).toThrow(message);
      try {
        native.lmGenerate(...args);
      } catch (e) {
        expect((e as Error).name).toBe(type);
        expect((e as Error).message.startsWith('lmGenerate: ')).toBe(true);
      }
      await expect(native.lmGenerateAsync(...args)).rejects.toThrow(message);
    });
  }

  it('checks onTokens', async () => {
    await expect(native.lmGenerateAsync(...base, 3 as never)).rejects.toThrow(
      /'onTokens' must be a function, got the number 3/,
    );
  });
});

describe('native TokenLoop argument checks', () => {
  it('rejects bad models, rows, plans, states and logits, naming them', () => {
    expect(() => new native.TokenLoop({ ...model(), stack: new Float32Array(3) })).toThrow(
      /TokenLoop: 'weights\.stack' must be a Float32Array of length \d+/,
    );
    expect(() => new native.TokenLoop({ V: 4, L: 1, H: 0, lstm: false })).toThrow(
      /TokenLoop: 'model\.H' must be a finite number in \[1, /,
    );
    const loop = new native.TokenLoop({ V: 13, L: 2, H: 8, lstm: false });
    loop.add(Int32Array.of(1, 2), ragged([[1], [2]]), options, null, 0);
    const h = new Float32Array(2 * 2 * 8);
    const bad: [() => unknown, RegExp][] = [
      [
        () => loop.add(Int32Array.of(2), ragged([[1]]), options, null, 0),
        /TokenLoop\.add: 'ids\[0\]' = 2 is already a row of the loop/,
      ],
      [
        () => loop.add(Int32Array.of(3), ragged([[1], [2]]), options, null, 0),
        /'prompts\.offsets' must have length B\+1 = 2, got 3/,
      ],
      [
        () => loop.add(Int32Array.of(3), ragged([[13]]), options, null, 0),
        /'prompts\.tokens\[0\]' must be a token id in \[0, 13\), got 13/,
      ],
      [
        () => loop.add(Int32Array.of(3), ragged([[1]]), { ...options, topP: 0 }, null, 0),
        /'options\.topP' must be greater than 0/,
      ],
      [
        () => loop.add(Int32Array.of(3), ragged([[1]]), options, null, -1),
        /'group' must be a finite number in \[0, /,
      ],
      [() => loop.plan(0, 1, 1), /TokenLoop\.plan: 'chunk' must be a finite number in \[1, /],
      [() => loop.plan(1, 1, 0), /TokenLoop\.plan: 'budget' must be a finite number in \[1, /],
      [
        () => loop.readState(Int32Array.of(0, 2), h, null),
        /'rows\[1\]' must be a row in \[0, 2\), got 2/,
      ],
      [
        () => loop.writeState(Int32Array.of(0, 1), h.subarray(1), null),
        /'h' must be a Float32Array of length 32 \(L\*rows\.length\*H = 2\*2\*8\)/,
      ],
      [
        () => loop.readState(Int32Array.of(0, 1), h, h),
        /'c' is only for LSTM and must be null for this cell/,
      ],
      [() => loop.run(1, 1, 1), /TokenLoop\.run: the loop has no weights to run/],
    ];
    for (const [call, message] of bad) expect(call).toThrow(message);
    loop.plan(4, 4, 4);
    expect(() => loop.sample(new Float32Array(13))).toThrow(
      /'logits' must be a Float32Array of length 26 \(plan\(\)\.want\.length\*V = 2\*13\)/,
    );
    expect(Array.from(loop.sample(new Float32Array(26)).rows)).toEqual([1, 2]);
  });
});
