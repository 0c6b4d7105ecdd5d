// A catalogue of bad calls, straight to the addon and through the TypeScript classes. Every one
// must throw (or, for the async twins, reject with) a TypeError or RangeError whose message names
// the argument at fault, and must leave the process running: the run reaching its end proves the
// in-process cases; shapes that reach the kernels' own limits run in a child process, so that an
// abort there fails one test instead of taking the whole file down.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Adam,
  clipGradNorm,
  Embedding,
  GRU,
  LanguageModel,
  Linear,
  LSTM,
  Parameter,
  RecurrentStack,
  RNN,
  SGD,
  setThreads,
  SoftmaxCrossEntropy,
  type CellType,
} from '../dist/index.js';
import type { Native, StackShape } from '../dist/core/native.js';

const ROOT = path.resolve(__dirname, '..');
const addonPath = path.join(ROOT, 'build', 'Release', 'rnnkit.node');
const addon = createRequire(__filename)(addonPath) as Native;

type ErrorClass = typeof TypeError | typeof RangeError;
type Case = [string, () => unknown, ErrorClass, RegExp];

function expectThrows(fn: () => unknown, cls: ErrorClass, message: RegExp): void {
  let error: unknown;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    error = e;
  }
  expect(error, `expected a ${cls.name}, but the call returned ${String(result)}`).toBeDefined();
  const e = error as Error;
  expect(e, `${e?.constructor?.name}: ${e?.message}`).toBeInstanceOf(cls);
  expect(e.message).toMatch(message);
}

// ---------------------------------------------------------------------------------------------
// Valid arguments, from which each case changes one thing.

const T = 3;
const B = 2;
const I = 4;
const H = 5;
const L = 2;

function shapeOf(cell: StackShape['cell'], over: Partial<StackShape> = {}): StackShape {
  return {
    cell,
    T,
    B,
    I,
    H,
    L,
    dropout: 0,
    residual: false,
    training: true,
    seed: 1,
    ...over,
  };
}

/** stackForward's arguments for a valid call; `replace` swaps arguments by position. */
function forwardArgs(cell: StackShape['cell'] = 'lstm', replace: Record<number, unknown> = {}) {
  const s = shapeOf(cell);
  const lstm = cell === 'lstm';
  const args: unknown[] = [
    s,
    new Float32Array(addon.stackParamCount(s)),
    new Float32Array(T * B * I),
    null,
    new Float32Array(L * B * H),
    lstm ? new Float32Array(L * B * H) : null,
    new Float32Array(T * B * H),
    new Float32Array(L * B * H),
    lstm ? new Float32Array(L * B * H) : null,
    new Float32Array(addon.stackWorkspaceSize(s)),
  ];
  for (const [i, v] of Object.entries(replace)) args[Number(i)] = v;
  return args;
}

function backwardArgs(cell: StackShape['cell'] = 'lstm', replace: Record<number, unknown> = {}) {
  const s = shapeOf(cell);
  const lstm = cell === 'lstm';
  const state = () => new Float32Array(L * B * H);
  const args: unknown[] = [
    s,
    new Float32Array(addon.stackParamCount(s)),
    new Float32Array(T * B * I),
    null,
    null,
    null,
    new Float32Array(addon.stackWorkspaceSize(s)),
    new Float32Array(T * B * H),
    state(),
    lstm ? state() : null,
    new Float32Array(T * B * I),
    state(),
    lstm ? state() : null,
    new Float32Array(addon.stackParamCount(s)),
  ];
  for (const [i, v] of Object.entries(replace)) args[Number(i)] = v;
  return args;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const call = (fn: keyof Native, args: unknown[]) => () => (addon[fn] as any)(...args);
const fwd = (replace: Record<number, unknown>, cell: StackShape['cell'] = 'lstm') =>
  call('stackForward', forwardArgs(cell, replace));
const fwdShape = (over: Record<string, unknown>, cell: StackShape['cell'] = 'lstm') =>
  call('stackForward', forwardArgs(cell, { 0: { ...shapeOf(cell), ...over } }));
const bwd = (replace: Record<number, unknown>, cell: StackShape['cell'] = 'lstm') =>
  call('stackBackward', backwardArgs(cell, replace));

const f32 = (n: number) => new Float32Array(n);
const adamConfig = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: true,
};
const sgdConfig = { lr: 0.1, momentum: 0.9, weightDecay: 0, nesterov: false };
const two = () => [f32(3), f32(4)];
const gemmShape = {
  transA: false,
  transB: false,
  kernel: 'builtin',
  M: 2,
  N: 3,
  K: 4,
  alpha: 1,
  beta: 0,
};
const xent = (replace: Record<number, unknown>) => {
  const args: unknown[] = [{ N: 2, V: 3 }, f32(6), Int32Array.from([0, 2]), -1, 0, f32(2)];
  for (const [i, v] of Object.entries(replace)) args[Number(i)] = v;
  return call('softmaxXentForward', args);
};

const nativeCases: Case[] = [
  // Wrong dtype.
  [
    'x as Float64Array',
    fwd({ 2: new Float64Array(T * B * I) }),
    TypeError,
    /stackForward: 'x' must be a Float32Array .*got Float64Array/,
  ],
  [
    'x as a plain array',
    fwd({ 2: new Array(T * B * I).fill(0) }),
    TypeError,
    /'x' must be a Float32Array.*got an array/,
  ],
  [
    'params as Int32Array',
    fwd({ 1: new Int32Array(addon.stackParamCount(shapeOf('lstm'))) }),
    TypeError,
    /'params' must be a Float32Array.*got Int32Array/,
  ],
  [
    'lengths as Float32Array',
    fwd({ 3: Float32Array.from([1, 2]) }),
    TypeError,
    /'lengths' must be an? Int32Array/,
  ],
  ['lengths as a plain array', fwd({ 3: [1, 2] }), TypeError, /'lengths'.*got an array/],
  [
    'y as Uint8Array',
    fwd({ 6: new Uint8Array(T * B * H) }),
    TypeError,
    /'y' must be a Float32Array.*Uint8Array/,
  ],
  ['h0 as a number', fwd({ 4: 0 }), TypeError, /'h0'.*got the number 0/],
  [
    'embedding ids as Float32Array',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(10), Float32Array.from([1]), f32(2)]),
    TypeError,
    /'ids' must be an Int32Array/,
  ],
  [
    'linear W as Float64Array',
    call('linearForward', [{ N: 2, I: 3, O: 4 }, f32(6), new Float64Array(12), null, f32(8)]),
    TypeError,
    /linearForward: 'W' must be a Float32Array/,
  ],
  [
    'gemm C as Int32Array',
    call('gemm', [gemmShape, f32(8), f32(12), new Int32Array(6)]),
    TypeError,
    /gemm: 'C' must be a Float32Array/,
  ],
  [
    'globalNorm of a Float64Array',
    call('globalNorm', [[f32(2), new Float64Array(2)]]),
    TypeError,
    /globalNorm: 'tensors\[1\]' must be a Float32Array/,
  ],
  [
    'globalNorm of a single array',
    call('globalNorm', [f32(2)]),
    TypeError,
    /'tensors' must be an array of Float32Array/,
  ],
  [
    'adam v[0] as Float64Array',
    call('adamUpdate', [two(), two(), two(), [new Float64Array(3), f32(4)], 1, adamConfig]),
    TypeError,
    /adamUpdate: 'v\[0\]' must be a Float32Array/,
  ],
  // Wrong lengths.
  [
    'x one element short',
    fwd({ 2: f32(T * B * I - 1) }),
    RangeError,
    /'x' must be a Float32Array of length 24 \(T\*B\*I = 3\*2\*4\), got length 23/,
  ],
  [
    'y one element long',
    fwd({ 6: f32(T * B * H + 1) }),
    RangeError,
    /'y' must be .*length 30.*got length 31/,
  ],
  [
    'params of a GRU given to an LSTM',
    fwd({ 1: f32(addon.stackParamCount({ cell: 'gru', I, H, L })) }),
    RangeError,
    /'params'.*stackParamCount/,
  ],
  [
    'workspace of an inference shape given to training',
    fwd({ 9: f32(addon.stackWorkspaceSize(shapeOf('lstm', { training: false }))) }),
    RangeError,
    /'ws' must be .*stackWorkspaceSize/,
  ],
  [
    'lengths with B+1 rows',
    fwd({ 3: Int32Array.from([1, 2, 3]) }),
    RangeError,
    /'lengths' must be an? Int32Array of length 2/,
  ],
  [
    'embedding table too short',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(9), Int32Array.from([1]), f32(2)]),
    RangeError,
    /'table'.*V\*E = 5\*2/,
  ],
  [
    'linear bias of the wrong length',
    call('linearForward', [{ N: 2, I: 3, O: 4 }, f32(6), f32(12), f32(3), f32(8)]),
    RangeError,
    /'b' must be .*length 4/,
  ],
  [
    'gemm A of the wrong length',
    call('gemm', [gemmShape, f32(7), f32(12), f32(6)]),
    RangeError,
    /'A' must be .*M\*K = 2\*4/,
  ],
  [
    'cross-entropy lse of the wrong length',
    xent({ 5: f32(3) }),
    RangeError,
    /'lse' must be .*length 2/,
  ],
  ['a detached x', fwd({ 2: detached(T * B * I) }), RangeError, /'x' must be .*got length 0/],
  // Missing arguments.
  [
    'stackForward()',
    call('stackForward', []),
    TypeError,
    /stackForward: 'shape' must be an object, got undefined/,
  ],
  [
    'stackForward(shape) alone',
    call('stackForward', [shapeOf('lstm')]),
    TypeError,
    /'params' must be a Float32Array.*got undefined/,
  ],
  ['stackForward without ws', fwd({ 9: undefined }), TypeError, /'ws'.*got undefined/],
  ['LSTM without cT', fwd({ 8: null }), TypeError, /'cT' must be a Float32Array.*got null/],
  [
    'stackBackward without dparams',
    bwd({ 13: undefined }),
    TypeError,
    /stackBackward: 'dparams'.*got undefined/,
  ],
  [
    'shape missing L',
    call('stackParamCount', [{ cell: 'lstm', I, H }]),
    TypeError,
    /'shape\.L' must be a number, got undefined/,
  ],
  [
    'shape as an array',
    fwd({ 0: [T, B, I, H, L] }),
    TypeError,
    /'shape' must be an object, got an array/,
  ],
  [
    'gemm without kernel',
    call('gemm', [{ ...gemmShape, kernel: undefined }, f32(8), f32(12), f32(6)]),
    TypeError,
    /'shape\.kernel' must be a string/,
  ],
  [
    'gemm with an unknown kernel',
    call('gemm', [{ ...gemmShape, kernel: 'mkl' }, f32(8), f32(12), f32(6)]),
    RangeError,
    /'shape\.kernel' must be one of 'auto', 'blas', 'builtin', got 'mkl'/,
  ],
  [
    'adam without config',
    call('adamUpdate', [two(), two(), two(), two(), 1]),
    TypeError,
    /'config' must be an object/,
  ],
  [
    'adam config without decoupled',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, decoupled: undefined }]),
    TypeError,
    /'config\.decoupled' must be a boolean/,
  ],
  [
    'linearBackward without dW',
    call('linearBackward', [{ N: 2, I: 3, O: 4 }, f32(6), f32(12), f32(8), null, undefined, null]),
    TypeError,
    /'dW'.*got undefined/,
  ],
  // Empty tensors.
  ['an empty x', fwd({ 2: f32(0) }), RangeError, /'x' must be .*length 24.*got length 0/],
  [
    'empty embedding ids',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(10), new Int32Array(0), f32(0)]),
    RangeError,
    /'ids' must not be empty/,
  ],
  [
    'empty embeddingBackward ids',
    call('embeddingBackward', [{ V: 5, E: 2 }, new Int32Array(0), f32(0), f32(10)]),
    RangeError,
    /'ids' must not be empty/,
  ],
  [
    'linear with N = 0',
    call('linearForward', [{ N: 0, I: 3, O: 4 }, f32(0), f32(12), null, f32(0)]),
    RangeError,
    /'shape\.N' must be .*\[1, /,
  ],
  [
    'gemm with K = 0',
    call('gemm', [{ ...gemmShape, K: 0 }, f32(0), f32(0), f32(6)]),
    RangeError,
    /'shape\.K'/,
  ],
  ['cross-entropy with V = 0', xent({ 0: { N: 2, V: 0 } }), RangeError, /'shape\.V'/],
  // NaN, infinite and negative hyper-parameters.
  [
    'dropout NaN',
    fwdShape({ dropout: NaN }),
    RangeError,
    /'shape\.dropout' must be a finite number in \[0, 0\.99\], got nan/i,
  ],
  ['dropout -0.1', fwdShape({ dropout: -0.1 }), RangeError, /'shape\.dropout'/],
  ['dropout 1', fwdShape({ dropout: 1 }), RangeError, /'shape\.dropout'/],
  ['dropout Infinity', fwdShape({ dropout: Infinity }), RangeError, /'shape\.dropout'.*inf/i],
  ['seed -1', fwdShape({ seed: -1 }), RangeError, /'shape\.seed'/],
  ['seed 0.5', fwdShape({ seed: 0.5 }), RangeError, /'shape\.seed' must be an integer/],
  [
    'adam lr NaN',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, lr: NaN }]),
    RangeError,
    /'config\.lr'/,
  ],
  [
    'adam lr -1',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, lr: -1 }]),
    RangeError,
    /'config\.lr'/,
  ],
  [
    'adam lr Infinity',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, lr: Infinity }]),
    RangeError,
    /'config\.lr'/,
  ],
  [
    'adam eps 0',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, eps: 0 }]),
    RangeError,
    /'config\.eps'/,
  ],
  [
    'adam eps -1e-8',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, eps: -1e-8 }]),
    RangeError,
    /'config\.eps'/,
  ],
  [
    'adam beta1 1',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, beta1: 1 }]),
    RangeError,
    /'config\.beta1'/,
  ],
  [
    'adam beta2 NaN',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, beta2: NaN }]),
    RangeError,
    /'config\.beta2'/,
  ],
  [
    'adam weightDecay -0.1',
    call('adamUpdate', [two(), two(), two(), two(), 1, { ...adamConfig, weightDecay: -0.1 }]),
    RangeError,
    /'config\.weightDecay'/,
  ],
  [
    'adam step 0',
    call('adamUpdate', [two(), two(), two(), two(), 0, adamConfig]),
    RangeError,
    /'step'/,
  ],
  [
    'sgd momentum -0.5',
    call('sgdUpdate', [two(), two(), two(), { ...sgdConfig, momentum: -0.5 }]),
    RangeError,
    /'config\.momentum'/,
  ],
  [
    'sgd lr NaN',
    call('sgdUpdate', [two(), two(), two(), { ...sgdConfig, lr: NaN }]),
    RangeError,
    /'config\.lr'/,
  ],
  [
    'sgd nesterov without momentum',
    call('sgdUpdate', [two(), two(), two(), { ...sgdConfig, momentum: 0, nesterov: true }]),
    RangeError,
    /'config\.nesterov'/,
  ],
  ['clip maxNorm 0', call('clipGlobalNorm', [two(), 0]), RangeError, /'maxNorm'/],
  ['clip maxNorm -1', call('clipGlobalNorm', [two(), -1]), RangeError, /'maxNorm'/],
  ['clip maxNorm NaN', call('clipGlobalNorm', [two(), NaN]), RangeError, /'maxNorm'/],
  ['clip maxNorm Infinity', call('clipGlobalNorm', [two(), Infinity]), RangeError, /'maxNorm'/],
  ['label smoothing 1.5', xent({ 4: 1.5 }), RangeError, /'labelSmoothing'/],
  ['label smoothing NaN', xent({ 4: NaN }), RangeError, /'labelSmoothing'/],
  ['ignore index 0.5', xent({ 3: 0.5 }), RangeError, /'ignoreIndex' must be an integer/],
  [
    'cross-entropy scale NaN',
    call('softmaxXentBackward', [
      { N: 2, V: 3 },
      f32(6),
      Int32Array.from([0, 2]),
      -1,
      0,
      f32(2),
      NaN,
      f32(6),
    ]),
    RangeError,
    /'scale'/,
  ],
  [
    'gemm alpha NaN',
    call('gemm', [{ ...gemmShape, alpha: NaN }, f32(8), f32(12), f32(6)]),
    RangeError,
    /'shape\.alpha'/,
  ],
  [
    'gemm beta -Infinity',
    call('gemm', [{ ...gemmShape, beta: -Infinity }, f32(8), f32(12), f32(6)]),
    RangeError,
    /'shape\.beta'/,
  ],
  // Zero, negative, non-integer and wrongly typed sizes.
  ['H = 0', fwdShape({ H: 0 }), RangeError, /'shape\.H' must be a finite number in \[1, /],
  ['T = -1', fwdShape({ T: -1 }), RangeError, /'shape\.T'/],
  ['I = 2.5', fwdShape({ I: 2.5 }), RangeError, /'shape\.I' must be an integer, got 2\.5/],
  ['L = NaN', fwdShape({ L: NaN }), RangeError, /'shape\.L'/],
  ['B as a string', fwdShape({ B: '2' }), TypeError, /'shape\.B' must be a number, got a string/],
  ['T = 2^31', fwdShape({ T: 2 ** 31 }), RangeError, /'shape\.T'/],
  [
    'residual as a string',
    fwdShape({ residual: 'yes' }),
    TypeError,
    /'shape\.residual' must be a boolean/,
  ],
  [
    'stackParamCount with I = 0',
    call('stackParamCount', [{ cell: 'gru', I: 0, H, L }]),
    RangeError,
    /stackParamCount: 'shape\.I'/,
  ],
  [
    'stackWorkspaceSize with L = -2',
    call('stackWorkspaceSize', [shapeOf('gru', { L: -2 })]),
    RangeError,
    /stackWorkspaceSize: 'shape\.L'/,
  ],
  [
    'embedding E = 0',
    call('embeddingForward', [{ V: 5, E: 0 }, f32(0), Int32Array.from([1]), f32(0)]),
    RangeError,
    /'shape\.E'/,
  ],
  ['setThreads(0)', call('setThreads', [0]), RangeError, /setThreads: 'threads'/],
  ['setThreads(1.5)', call('setThreads', [1.5]), RangeError, /'threads' must be an integer/],
  ['setThreads("2")', call('setThreads', ['2']), TypeError, /'threads' must be a number/],
  [
    'stackParamCount whose count does not fit (2^64 + 2^34 floats)',
    call('stackParamCount', [{ cell: 'lstm', I: 2 ** 30, H: 2 ** 30, L: 2 }]),
    RangeError,
    /stackParamCount: .*(shape|too large)/,
  ],
  // Unknown cell names.
  [
    'cell "transformer"',
    fwdShape({ cell: 'transformer' }),
    RangeError,
    /'shape\.cell' must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got 'transformer'/,
  ],
  [
    'cell "LSTM" (case matters)',
    call('stackParamCount', [{ cell: 'LSTM', I, H, L }]),
    RangeError,
    /'shape\.cell'.*got 'LSTM'/,
  ],
  [
    'cell as a number',
    call('stackWorkspaceSize', [shapeOf('lstm', { cell: 2 as never })]),
    TypeError,
    /'shape\.cell' must be a string/,
  ],
  // Ids out of range.
  [
    'embedding id = V',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(10), Int32Array.from([0, 5]), f32(4)]),
    RangeError,
    /'ids\[1\]' must be in \[0, 5\), got 5/,
  ],
  [
    'embedding id -1',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(10), Int32Array.from([-1]), f32(2)]),
    RangeError,
    /'ids\[0\]'.*got -1/,
  ],
  [
    'embeddingBackward id = V',
    call('embeddingBackward', [{ V: 5, E: 2 }, Int32Array.from([7]), f32(2), f32(10)]),
    RangeError,
    /embeddingBackward: 'ids\[0\]'/,
  ],
  [
    'target = V',
    xent({ 2: Int32Array.from([0, 3]) }),
    RangeError,
    /'targets\[1\]' must be in \[0, 3\) or the ignore index -1, got 3/,
  ],
  [
    'target -2 (ignore index is -1)',
    xent({ 2: Int32Array.from([-2, 0]) }),
    RangeError,
    /'targets\[0\]'/,
  ],
  // Lengths out of [1, T].
  [
    'lengths[0] = 0',
    fwd({ 3: Int32Array.from([0, 3]) }),
    RangeError,
    /'lengths\[0\]' must be in \[1, T=3\], got 0/,
  ],
  [
    'lengths[1] = T + 1',
    fwd({ 3: Int32Array.from([3, 4]) }),
    RangeError,
    /'lengths\[1\]' must be in \[1, T=3\], got 4/,
  ],
  [
    'lengths[1] negative',
    bwd({ 3: Int32Array.from([1, -3]) }),
    RangeError,
    /stackBackward: 'lengths\[1\]'/,
  ],
  // LSTM-only arguments given to other cells.
  ['c0 given to a GRU', fwd({ 5: f32(L * B * H) }, 'gru'), TypeError, /'c0' is only for LSTM/],
  [
    'cT given to an RNN',
    fwd({ 8: f32(L * B * H) }, 'rnn_tanh'),
    TypeError,
    /'cT' is only for LSTM/,
  ],
  ['dcT given to a GRU', bwd({ 9: f32(L * B * H) }, 'gru'), TypeError, /'dcT' is only for LSTM/],
  // Backward without a training forward.
  [
    'stackBackward with training false',
    bwd({ 0: shapeOf('lstm', { training: false }) }),
    RangeError,
    /'shape\.training' must be true/,
  ],
  // A state of another size.
  [
    'h0 of a model with another H',
    fwd({ 4: f32(L * B * (H + 1)) }),
    RangeError,
    /'h0' must be .*L\*B\*H = 2\*2\*5/,
  ],
  ['c0 of a one-layer model', fwd({ 5: f32(B * H) }), RangeError, /'c0' must be .*length 20/],
  ['dhT of another batch', bwd({ 8: f32(L * (B + 1) * H) }), RangeError, /'dhT'/],
  // Optimizer lists that do not match.
  [
    'adam grads with fewer arrays',
    call('adamUpdate', [two(), [f32(3)], two(), two(), 1, adamConfig]),
    RangeError,
    /'grads' must hold 2 arrays \(one per parameter\), got 1/,
  ],
  [
    'adam m[1] of another length',
    call('adamUpdate', [two(), two(), [f32(3), f32(5)], two(), 1, adamConfig]),
    RangeError,
    /'m\[1\]' must have length 4 like its parameter, got 5/,
  ],
  [
    'adam v with more arrays',
    call('adamUpdate', [two(), two(), two(), [...two(), f32(1)], 1, adamConfig]),
    RangeError,
    /'v' must hold 2 arrays/,
  ],
  [
    'sgd velocity of other sizes',
    call('sgdUpdate', [two(), two(), [f32(4), f32(3)], sgdConfig]),
    RangeError,
    /'velocity\[0\]'/,
  ],
  ['clip of a non-array', call('clipGlobalNorm', [null, 1]), TypeError, /'grads' must be an array/],
];

function detached(n: number): Float32Array {
  const buffer = new ArrayBuffer(n * 4);
  const view = new Float32Array(buffer);
  structuredClone(buffer, { transfer: [buffer] });
  return view;
}

describe('bad calls straight to the addon', () => {
  it.each(nativeCases)('%s', (_name, fn, cls, message) => expectThrows(fn, cls, message));

  it('writes nothing when an argument is rejected', () => {
    const args = forwardArgs('lstm');
    const params = args[1] as Float32Array;
    params.fill(0.1);
    (args[2] as Float32Array).fill(1);
    const y = args[6] as Float32Array;
    const hT = args[7] as Float32Array;
    y.fill(7);
    hT.fill(7);
    args[9] = f32(3); // a workspace that is too small: checked before anything runs
    expectThrows(call('stackForward', args), RangeError, /'ws'/);
    expect(y.every((v) => v === 7) && hT.every((v) => v === 7)).toBe(true);
  });
});

describe('async twins reject with the same errors', () => {
  const asyncCases: [string, () => unknown, ErrorClass, RegExp][] = [
    [
      'stackForwardAsync with x as Float64Array',
      call('stackForwardAsync', forwardArgs('lstm', { 2: new Float64Array(T * B * I) })),
      TypeError,
      /stackForward: 'x' must be a Float32Array/,
    ],
    [
      'stackForwardAsync with no arguments',
      call('stackForwardAsync', []),
      TypeError,
      /'shape' must be an object/,
    ],
    [
      'stackForwardAsync with lengths out of range',
      call('stackForwardAsync', forwardArgs('gru', { 3: Int32Array.from([1, 9]) })),
      RangeError,
      /'lengths\[1\]'/,
    ],
    [
      'stackForwardAsync with an unknown cell',
      call(
        'stackForwardAsync',
        forwardArgs('lstm', { 0: shapeOf('lstm', { cell: 'bilstm' as never }) }),
      ),
      RangeError,
      /'shape\.cell'/,
    ],
    [
      'stackForwardAsync with dropout NaN',
      call('stackForwardAsync', forwardArgs('lstm', { 0: shapeOf('lstm', { dropout: NaN }) })),
      RangeError,
      /'shape\.dropout'/,
    ],
    [
      'stackForwardAsync with c0 for a GRU',
      call('stackForwardAsync', forwardArgs('gru', { 5: f32(L * B * H) })),
      TypeError,
      /'c0' is only for LSTM/,
    ],
    [
      'stackBackwardAsync with training false',
      call('stackBackwardAsync', backwardArgs('lstm', { 0: shapeOf('lstm', { training: false }) })),
      RangeError,
      /'shape\.training'/,
    ],
    [
      'stackBackwardAsync with a short dy',
      call('stackBackwardAsync', backwardArgs('rnn_relu', { 7: f32(1) })),
      RangeError,
      /'dy'/,
    ],
    [
      'linearForwardAsync with W as Int32Array',
      call('linearForwardAsync', [{ N: 2, I: 3, O: 4 }, f32(6), new Int32Array(12), null, f32(8)]),
      TypeError,
      /'W'/,
    ],
    [
      'gemmAsync with alpha Infinity',
      call('gemmAsync', [{ ...gemmShape, alpha: Infinity }, f32(8), f32(12), f32(6)]),
      RangeError,
      /'shape\.alpha'/,
    ],
  ];

  it.each(asyncCases)('%s', async (_name, fn, cls, message) => {
    let promise: unknown;
    expect(() => (promise = fn()), 'an async call rejects rather than throws').not.toThrow();
    expect(promise).toBeInstanceOf(Promise);
    const error = await (promise as Promise<unknown>).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, 'the promise must reject').toBeInstanceOf(cls);
    expect((error as Error).message).toMatch(message);
  });

  it('a valid async call still resolves, with the result of the sync call', async () => {
    const a = forwardArgs('gru');
    const b = forwardArgs('gru');
    for (const args of [a, b]) {
      (args[1] as Float32Array).forEach((_, i, p) => (p[i] = Math.sin(i)));
      (args[2] as Float32Array).forEach((_, i, x) => (x[i] = Math.cos(i)));
    }
    await expect(
      addon.stackForwardAsync(...(a as Parameters<Native['stackForward']>)),
    ).resolves.toBeUndefined();
    addon.stackForward(...(b as Parameters<Native['stackForward']>));
    expect(a[6]).toEqual(b[6]);
    expect((a[6] as Float32Array).some((v) => v !== 0)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the TypeScript classes.

const small = { inputSize: I, hiddenSize: H, numLayers: L, seed: 3 };
const lstm = () => new LSTM(small);
const x = () => f32(T * B * I);
const run = { steps: T, batch: B };
const lm = () => new LanguageModel({ vocabSize: 11, hiddenSize: 6, embeddingSize: 4, seed: 1 });
const params = () => [new Parameter('a', [3]), new Parameter('b', [2, 2])];

const classCases: Case[] = [
  // Construction.
  [
    'LSTM inputSize 0',
    () => new LSTM({ ...small, inputSize: 0 }),
    RangeError,
    /inputSize must be an integer in \[1, /,
  ],
  [
    'GRU hiddenSize 2.5',
    () => new GRU({ ...small, hiddenSize: 2.5 }),
    RangeError,
    /hiddenSize.*got 2\.5/,
  ],
  ['RNN numLayers -1', () => new RNN({ ...small, numLayers: -1 }), RangeError, /numLayers/],
  [
    'LSTM hiddenSize as a string',
    () => new LSTM({ ...small, hiddenSize: '5' as never }),
    RangeError,
    /hiddenSize.*got string/,
  ],
  [
    'LSTM dropout NaN',
    () => new LSTM({ ...small, dropout: NaN }),
    RangeError,
    /dropout must be a finite number/,
  ],
  ['LSTM dropout -0.5', () => new LSTM({ ...small, dropout: -0.5 }), RangeError, /dropout/],
  ['LSTM dropout 1', () => new LSTM({ ...small, dropout: 1 }), RangeError, /dropout/],
  ['GRU dropout Infinity', () => new GRU({ ...small, dropout: Infinity }), RangeError, /dropout/],
  [
    'RNN nonlinearity "sigmoid"',
    () => new RNN({ ...small, nonlinearity: 'sigmoid' as never }),
    RangeError,
    /nonlinearity must be 'tanh' or 'relu'/,
  ],
  [
    'LSTM with a nonlinearity',
    () => new LSTM({ ...small, nonlinearity: 'relu' }),
    RangeError,
    /nonlinearity applies to cell 'rnn' only/,
  ],
  [
    'cell "transformer"',
    () => new RecurrentStack('transformer' as CellType, small),
    RangeError,
    /cell must be 'rnn', 'lstm' or 'gru'/,
  ],
  ['Embedding vocabSize 0', () => new Embedding(0, 3), RangeError, /vocabSize/],
  ['Embedding embeddingSize -1', () => new Embedding(3, -1), RangeError, /embeddingSize/],
  ['Linear inputSize 0', () => new Linear(0, 2), RangeError, /inputSize/],
  ['Linear outputSize 2.5', () => new Linear(2, 2.5), RangeError, /outputSize/],
  [
    'Linear sharing a weight of another shape',
    () => new Linear(3, 4, { weight: new Parameter('w', [3, 4]) }),
    RangeError,
    /shared Linear weight must be \[4, 3\]/,
  ],
  ['LanguageModel vocabSize 0', () => new LanguageModel({ vocabSize: 0 }), RangeError, /vocabSize/],
  [
    'LanguageModel without vocabSize',
    () => new LanguageModel({}),
    RangeError,
    /vocabSize.*got undefined/,
  ],
  [
    'LanguageModel hiddenSize -3',
    () => new LanguageModel({ vocabSize: 5, hiddenSize: -3 }),
    RangeError,
    /hiddenSize/,
  ],
  [
    'LanguageModel dropout 2',
    () => new LanguageModel({ vocabSize: 5, hiddenSize: 4, numLayers: 2, dropout: 2 }),
    RangeError,
    /dropout/,
  ],
  [
    'LanguageModel cell "transformer"',
    () => new LanguageModel({ vocabSize: 5, hiddenSize: 4, cell: 'transformer' as CellType }),
    RangeError,
    /cell/,
  ],
  [
    'LanguageModel tieWeights with other sizes',
    () => new LanguageModel({ vocabSize: 5, hiddenSize: 4, embeddingSize: 3, tieWeights: true }),
    RangeError,
    /tieWeights needs embeddingSize === hiddenSize/,
  ],
  ['Adam lr NaN', () => new Adam(params(), { lr: NaN }), RangeError, /lr must be a finite number/],
  ['Adam lr -1', () => new Adam(params(), { lr: -1 }), RangeError, /lr/],
  ['Adam eps 0', () => new Adam(params(), { eps: 0 }), RangeError, /eps/],
  ['Adam beta1 1', () => new Adam(params(), { beta1: 1 }), RangeError, /beta1/],
  ['Adam beta2 -0.1', () => new Adam(params(), { beta2: -0.1 }), RangeError, /beta2/],
  [
    'Adam weightDecay Infinity',
    () => new Adam(params(), { weightDecay: Infinity }),
    RangeError,
    /weightDecay/,
  ],
  ['SGD momentum -0.5', () => new SGD(params(), { momentum: -0.5 }), RangeError, /momentum/],
  ['SGD lr Infinity', () => new SGD(params(), { lr: Infinity }), RangeError, /lr/],
  [
    'SGD nesterov without momentum',
    () => new SGD(params(), { nesterov: true }),
    RangeError,
    /nesterov/,
  ],
  ['clipGradNorm maxNorm 0', () => clipGradNorm(params(), 0), RangeError, /maxNorm/],
  ['clipGradNorm maxNorm -1', () => clipGradNorm(params(), -1), RangeError, /maxNorm/],
  ['clipGradNorm maxNorm NaN', () => clipGradNorm(params(), NaN), RangeError, /maxNorm/],
  ['clipGradNorm maxNorm Infinity', () => clipGradNorm(params(), Infinity), RangeError, /maxNorm/],
  [
    'cross-entropy labelSmoothing 1.5',
    () => new SoftmaxCrossEntropy({ labelSmoothing: 1.5 }),
    RangeError,
    /labelSmoothing/,
  ],
  [
    'cross-entropy ignoreIndex 0.5',
    () => new SoftmaxCrossEntropy({ ignoreIndex: 0.5 }),
    RangeError,
    /ignoreIndex/,
  ],
  ['setThreads(0)', () => setThreads(0), RangeError, /threads/],
  // Forward.
  [
    'forward x as Float64Array',
    () => lstm().forward(new Float64Array(T * B * I) as never, run),
    TypeError,
    /'x' must be a Float32Array/,
  ],
  [
    'forward x as a plain array',
    () => lstm().forward(new Array(T * B * I).fill(0) as never, run),
    TypeError,
    /'x'/,
  ],
  [
    'forward x of another length',
    () => lstm().forward(f32(T * B * I + I), run),
    RangeError,
    /'x' must be .*T\*B\*I/,
  ],
  ['forward steps 0', () => lstm().forward(x(), { steps: 0, batch: B }), RangeError, /steps/],
  ['forward batch 1.5', () => lstm().forward(x(), { steps: T, batch: 1.5 }), RangeError, /batch/],
  ['forward steps NaN', () => lstm().forward(x(), { steps: NaN, batch: B }), RangeError, /steps/],
  [
    'forward lengths[0] = 0',
    () => lstm().forward(x(), { ...run, lengths: Int32Array.from([0, 1]) }),
    RangeError,
    /lengths\[0\]/,
  ],
  [
    'forward lengths[1] = T + 1',
    () => new GRU(small).forward(x(), { ...run, lengths: Int32Array.from([1, T + 1]) }),
    RangeError,
    /lengths\[1\]/,
  ],
  [
    'forward lengths as Float32Array',
    () => lstm().forward(x(), { ...run, lengths: Float32Array.from([1, 1]) as never }),
    TypeError,
    /'lengths'/,
  ],
  [
    'forward lengths for another batch',
    () => lstm().forward(x(), { ...run, lengths: Int32Array.from([1]) }),
    RangeError,
    /'lengths'/,
  ],
  [
    'GRU forward given a cell state',
    () => new GRU(small).forward(x(), { ...run, state: { h: f32(L * B * H), c: f32(L * B * H) } }),
    RangeError,
    /state\.c is only for LSTM/,
  ],
  [
    'LSTM forward without a cell state',
    () => lstm().forward(x(), { ...run, state: { h: f32(L * B * H) } }),
    RangeError,
    /state\.c \(LSTM cell state\)/,
  ],
  [
    'forward with the state of a wider model',
    () =>
      lstm().forward(x(), {
        ...run,
        state: new LSTM({ ...small, hiddenSize: H + 1 }).zeroState(B),
      }),
    RangeError,
    /state\.h must be a Float32Array of numLayers\*batch\*hiddenSize = 2\*2\*5 = 20 floats, got length 24/,
  ],
  [
    'forward with the state of a shallower model',
    () => lstm().forward(x(), { ...run, state: new LSTM({ ...small, numLayers: 1 }).zeroState(B) }),
    RangeError,
    /state\.h/,
  ],
  [
    'forward with state.h as Float64Array',
    () =>
      new RNN(small).forward(x(), { ...run, state: { h: new Float64Array(L * B * H) as never } }),
    RangeError,
    /state\.h.*got Float64Array/,
  ],
  [
    'Embedding forward id = vocabSize',
    () => new Embedding(5, 2).forward(Int32Array.from([0, 5])),
    RangeError,
    /'ids\[1\]' must be in \[0, 5\)/,
  ],
  [
    'Embedding forward ids as Float32Array',
    () => new Embedding(5, 2).forward(Float32Array.from([1]) as never),
    TypeError,
    /'ids'/,
  ],
  [
    'Embedding forward no ids',
    () => new Embedding(5, 2).forward(new Int32Array(0)),
    RangeError,
    /'ids' must not be empty/,
  ],
  [
    'Linear forward of another width',
    () => new Linear(3, 2).forward(f32(7)),
    RangeError,
    /input length 7 is not a positive multiple of inputSize 3/,
  ],
  [
    'Linear forward of nothing',
    () => new Linear(3, 2).forward(f32(0)),
    RangeError,
    /input length 0/,
  ],
  [
    'Linear forward of a Float64Array',
    () => new Linear(3, 2).forward(new Float64Array(6) as never),
    TypeError,
    /'x' must be a Float32Array/,
  ],
  [
    'cross-entropy target = V',
    () => new SoftmaxCrossEntropy().forward(f32(6), Int32Array.from([0, 3]), 3),
    RangeError,
    /'targets\[1\]'/,
  ],
  [
    'LanguageModel forward id = V',
    () => lm().forward([[0, 11]]),
    RangeError,
    /'ids\[1\]' must be in \[0, 11\)/,
  ],
  [
    'LanguageModel forward id -1',
    () => lm().forward({ ids: Int32Array.from([3, -1]), steps: 1, batch: 2 }),
    RangeError,
    /'ids\[1\]'/,
  ],
  [
    'LanguageModel forward of no tokens',
    () => lm().forward([]),
    RangeError,
    /tokens must be a non-empty/,
  ],
  [
    'LanguageModel forward of ragged tokens',
    () => lm().forward([[1, 2], [3]]),
    RangeError,
    /tokens\[1\] must hold 2 ids/,
  ],
  [
    'LanguageModel forward ids as Float32Array',
    () => lm().forward({ ids: Float32Array.from([1]) as never, steps: 1, batch: 1 }),
    RangeError,
    /ids must be an Int32Array/,
  ],
  [
    "LanguageModel forward with another model's state",
    () =>
      lm().forward(
        [[1, 2]],
        new LanguageModel({ vocabSize: 11, hiddenSize: 7, embeddingSize: 4 }).zeroState(2),
      ),
    RangeError,
    /state\.h/,
  ],
  // Backward.
  [
    'backward before any forward',
    () => lstm().backward(f32(T * B * H)),
    RangeError,
    /training: true/,
  ],
  [
    'backward after an inference forward',
    () => {
      const s = lstm();
      s.forward(x(), run);
      return s.backward(f32(T * B * H));
    },
    RangeError,
    /backward needs a forward with training: true/,
  ],
  [
    'backward with dy of another length',
    () => {
      const s = new GRU(small);
      s.forward(x(), { ...run, training: true });
      return s.backward(f32(T * B * H - 1));
    },
    RangeError,
    /'dy' must be .*T\*B\*H/,
  ],
  [
    'backward with dState of another model',
    () => {
      const s = lstm();
      s.forward(x(), { ...run, training: true });
      return s.backward(f32(T * B * H), { h: f32(1), c: f32(1) });
    },
    RangeError,
    /dState\.h/,
  ],
  [
    'GRU backward given a cell-state gradient',
    () => {
      const s = new GRU(small);
      s.forward(x(), { ...run, training: true });
      return s.backward(f32(T * B * H), { h: f32(L * B * H), c: f32(L * B * H) });
    },
    RangeError,
    /dState\.c is only for LSTM/,
  ],
];
/* eslint-enable @typescript-eslint/no-explicit-any */

describe('bad calls through the TypeScript classes', () => {
  it.each(classCases)('%s', (_name, fn, cls, message) => expectThrows(fn, cls, message));

  it('the layers still compute after all of the above', () => {
    const s = new LSTM({ inputSize: 2, hiddenSize: 3, seed: 9 });
    const input = Float32Array.from([0.5, -0.5, 1, 2]);
    const a = s.forward(input, { steps: 2, batch: 1 }).output.slice();
    expect(a.every(Number.isFinite) && a.some((v) => v !== 0)).toBe(true);
    expect(s.forward(input, { steps: 2, batch: 1 }).output).toEqual(a);
  });
});

describe("shapes past the kernels' limits (each in a child process, which must survive)", () => {
  // Each size is within the argument parser's range ([1, 2^30]) but their products are not:
  // T*B above INT_MAX, 4*H above INT_MAX, or a workspace far beyond memory. The kernels check
  // these; their error must still reach JS as a RangeError, not abort the process.
  const prelude = String.raw`
    const root = process.argv[1];
    const addon = require(root + '/build/Release/rnnkit.node');
    const { LSTM, LanguageModel } = require(root + '/dist/index.js');
    const base = { cell: 'lstm', T: 3, B: 2, I: 4, H: 5, L: 1, dropout: 0, residual: false, training: false, seed: 0 };
  `;
  const cases: [string, string][] = [
    [
      'stackWorkspaceSize with T*B = 2^32',
      'addon.stackWorkspaceSize({ ...base, T: 65536, B: 65536 })',
    ],
    [
      'stackWorkspaceSize with 4*H above INT_MAX',
      'addon.stackWorkspaceSize({ ...base, H: 2 ** 29 + 1 })',
    ],
    [
      'stackWorkspaceSize with a 2^63-float workspace',
      'addon.stackWorkspaceSize({ ...base, T: 32768, B: 32768, H: 1 << 20, L: 1024 })',
    ],
    [
      'LSTM.forward with steps*batch = 2^32',
      'new LSTM({ inputSize: 1, hiddenSize: 1, seed: 1 }).forward(new Float32Array(1), { steps: 65536, batch: 65536 })',
    ],
    [
      'LanguageModel.lossAndGradients with steps*batch = 2^32',
      'new LanguageModel({ vocabSize: 3, hiddenSize: 2, seed: 1 }).lossAndGradients(new Int32Array(1), new Int32Array(1), 65536, 65536)',
    ],
  ];

  it.each(cases)('%s throws a RangeError naming the shape', (_name, code) => {
    const script = `${prelude}
      let out;
      try { ${code}; out = { threw: null }; }
      catch (e) { out = { threw: e && e.constructor && e.constructor.name, message: String(e && e.message) }; }
      process.stdout.write(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['-e', script, ROOT], {
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(
      { status: r.status, signal: r.signal },
      `the process did not survive:\n${r.stderr.trim()}`,
    ).toEqual({ status: 0, signal: null });
    const out = JSON.parse(r.stdout) as { threw: string | null; message?: string };
    expect(out.threw, out.message).toBe('RangeError');
    expect(out.message).toMatch(/shape|steps|batch|too large/);
  });
});
