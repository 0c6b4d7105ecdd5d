// A catalogue of bad calls straight to the addon (those through the TypeScript classes are in
// test/nn/bad-input.test.ts). Every one must throw (or, for the async twins, reject with) a
// TypeError or RangeError whose message names the argument at fault, and must leave the process
// running: the run reaching its end proves the in-process cases; shapes that reach the kernels'
// own limits run in a child process, so that an abort there fails one test instead of taking the
// whole file down.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  addonChoice,
  type AttentionShape,
  type FeedingBackwardOptions,
  type FeedingForwardOptions,
  type FeedingShape,
  type LuongBackwardOptions,
  type LuongForwardOptions,
  type Native,
  type StackBackwardOptions,
  type StackForwardOptions,
  type StackShape,
} from '../../lib/core/native';
import { type ErrorClass, type Case, expectThrows, T, B, I, H, L, f32 } from '../helpers/bad-input';

const ROOT = path.resolve(__dirname, '..', '..');
const addonPath = addonChoice.file;
const addon = createRequire(__filename)(addonPath) as Native;

// ---------------------------------------------------------------------------------------------
// Valid arguments, from which each case changes one thing.
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

/** stackForward's options for a valid call, with the fields of `replace` swapped in. */
function forwardOptions(
  cell: StackShape['cell'] = 'lstm',
  replace: Partial<Record<keyof StackForwardOptions, unknown>> = {},
): StackForwardOptions {
  const s = shapeOf(cell);
  const lstm = cell === 'lstm';
  const options: StackForwardOptions = {
    shape: s,
    params: new Float32Array(addon.stackParamCount(s)),
    x: new Float32Array(T * B * I),
    lengths: null,
    h0: new Float32Array(L * B * H),
    c0: lstm ? new Float32Array(L * B * H) : null,
    y: new Float32Array(T * B * H),
    hT: new Float32Array(L * B * H),
    cT: lstm ? new Float32Array(L * B * H) : null,
    ws: new Float32Array(addon.stackWorkspaceSize(s)),
  };
  return { ...options, ...replace } as StackForwardOptions;
}

function backwardOptions(
  cell: StackShape['cell'] = 'lstm',
  replace: Partial<Record<keyof StackBackwardOptions, unknown>> = {},
): StackBackwardOptions {
  const s = shapeOf(cell);
  const lstm = cell === 'lstm';
  const state = () => new Float32Array(L * B * H);
  const options: StackBackwardOptions = {
    shape: s,
    params: new Float32Array(addon.stackParamCount(s)),
    x: new Float32Array(T * B * I),
    lengths: null,
    h0: null,
    c0: null,
    ws: new Float32Array(addon.stackWorkspaceSize(s)),
    dy: new Float32Array(T * B * H),
    dhT: state(),
    dcT: lstm ? state() : null,
    dx: new Float32Array(T * B * I),
    dh0: state(),
    dc0: lstm ? state() : null,
    dparams: new Float32Array(addon.stackParamCount(s)),
  };
  return { ...options, ...replace } as StackBackwardOptions;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const call = (fn: keyof Native, args: unknown[]) => () => (addon[fn] as any)(...args);
type ForwardReplace = Partial<Record<keyof StackForwardOptions, unknown>>;
const fwd = (replace: ForwardReplace, cell: StackShape['cell'] = 'lstm') =>
  call('stackForward', [forwardOptions(cell, replace)]);
const fwdShape = (over: Record<string, unknown>, cell: StackShape['cell'] = 'lstm') =>
  fwd({ shape: { ...shapeOf(cell), ...over } }, cell);
const bwd = (
  replace: Partial<Record<keyof StackBackwardOptions, unknown>>,
  cell: StackShape['cell'] = 'lstm',
) => call('stackBackward', [backwardOptions(cell, replace)]);

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

// Luong attention and the GRU input-feeding decoder over S = 2 source positions, E = 3.
const S = 2;
const E = 3;
const attentionShape: AttentionShape = { kind: 'general', T, S, B, Hd: H, He: H, A: H };
function luongForward(): LuongForwardOptions {
  const s = attentionShape;
  return {
    shape: s,
    params: f32(addon.attentionParamCount(s)),
    q: f32(T * B * H),
    enc: f32(S * B * H),
    lengths: Int32Array.from([2, 1]),
    ws: f32(addon.attentionWorkspaceSize(s)),
    align: f32(T * B * S),
    out: f32(T * B * H),
  };
}
function luongBackward(): LuongBackwardOptions {
  const f = luongForward();
  return {
    ...f,
    dout: f32(T * B * H),
    dq: f32(T * B * H),
    denc: f32(S * B * H),
    dparams: f32(f.params.length),
  };
}
function feedingForward(): FeedingForwardOptions {
  const shape: FeedingShape = {
    cell: 'gru',
    kind: 'general',
    T,
    S,
    B,
    E,
    H,
    L,
    He: H,
    A: H,
    dropout: 0,
    training: true,
    seed: 1,
  };
  return {
    shape,
    stack: f32(addon.stackParamCount({ cell: 'gru', I: E + H, H, L })),
    attention: f32(addon.attentionParamCount({ ...attentionShape, T: 1, S: 1, B: 1 })),
    x: f32(T * B * E),
    enc: f32(S * B * H),
    lengths: Int32Array.from([2, 1]),
    h0: null,
    c0: null,
    ws: f32(addon.feedingWorkspaceSize(shape)),
    out: f32(T * B * H),
    align: f32(T * B * S),
  };
}
function feedingBackward(): FeedingBackwardOptions {
  const f = feedingForward();
  return {
    ...f,
    dout: f32(T * B * H),
    dx: null,
    denc: f32(S * B * H),
    dh0: null,
    dc0: null,
    dstack: f32(f.stack.length),
    dattention: f32(f.attention.length),
  };
}

const nativeCases: Case[] = [
  // Wrong dtype.
  [
    'x as Float64Array',
    fwd({ x: new Float64Array(T * B * I) }),
    TypeError,
    /stackForward: 'x' must be a Float32Array .*got Float64Array/,
  ],
  [
    'x as a plain array',
    fwd({ x: new Array(T * B * I).fill(0) }),
    TypeError,
    /'x' must be a Float32Array.*got an array/,
  ],
  [
    'params as Int32Array',
    fwd({ params: new Int32Array(addon.stackParamCount(shapeOf('lstm'))) }),
    TypeError,
    /'params' must be a Float32Array.*got Int32Array/,
  ],
  [
    'lengths as Float32Array',
    fwd({ lengths: Float32Array.from([1, 2]) }),
    TypeError,
    /'lengths' must be an? Int32Array/,
  ],
  ['lengths as a plain array', fwd({ lengths: [1, 2] }), TypeError, /'lengths'.*got an array/],
  [
    'y as Uint8Array',
    fwd({ y: new Uint8Array(T * B * H) }),
    TypeError,
    /'y' must be a Float32Array.*Uint8Array/,
  ],
  ['h0 as a number', fwd({ h0: 0 }), TypeError, /'h0'.*got the number 0/],
  [
    'embedding ids as Float32Array',
    call('embeddingForward', [{ V: 5, E: 2 }, f32(10), Float32Array.from([1]), f32(2)]),
    TypeError,
    /'ids' must be an Int32Array/,
  ],
  [
    'stack precision fp16',
    fwdShape({ precision: 'fp16' }),
    RangeError,
    /stackForward: 'shape.precision' must be one of 'float32', 'bf16', got 'fp16'/,
  ],
  ['stack precision as a number', fwdShape({ precision: 16 }), TypeError, /'shape.precision'/],
  [
    'linear precision null',
    call('linearForward', [{ N: 2, I: 3, O: 4, precision: null }, f32(6), f32(12), null, f32(8)]),
    TypeError,
    /linearForward: 'shape.precision' must be a string, got null/,
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
    fwd({ x: f32(T * B * I - 1) }),
    RangeError,
    /'x' must be a Float32Array of length 24 \(T\*B\*I = 3\*2\*4\), got length 23/,
  ],
  [
    'y one element long',
    fwd({ y: f32(T * B * H + 1) }),
    RangeError,
    /'y' must be .*length 30.*got length 31/,
  ],
  [
    'params of a GRU given to an LSTM',
    fwd({ params: f32(addon.stackParamCount({ cell: 'gru', I, H, L })) }),
    RangeError,
    /'params'.*stackParamCount/,
  ],
  [
    'workspace of an inference shape given to training',
    fwd({ ws: f32(addon.stackWorkspaceSize(shapeOf('lstm', { training: false }))) }),
    RangeError,
    /'ws' must be .*stackWorkspaceSize/,
  ],
  [
    'lengths with B+1 rows',
    fwd({ lengths: Int32Array.from([1, 2, 3]) }),
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
  ['a detached x', fwd({ x: detached(T * B * I) }), RangeError, /'x' must be .*got length 0/],
  // Missing arguments and fields, fields that are not the function's, positional calls.
  [
    'stackForward()',
    call('stackForward', []),
    TypeError,
    /stackForward: 'options' must be an object, got undefined/,
  ],
  [
    'stackForward({})',
    call('stackForward', [{}]),
    TypeError,
    /stackForward: 'shape' must be an object, got undefined/,
  ],
  [
    'stackForward({ shape }) alone',
    call('stackForward', [{ shape: shapeOf('lstm') }]),
    TypeError,
    /'params' must be a Float32Array.*got undefined/,
  ],
  [
    'stackForward with its options as an array',
    call('stackForward', [Object.values(forwardOptions())]),
    TypeError,
    /stackForward: 'options' must be an object, got an array/,
  ],
  [
    'stackForward called with positional arguments',
    call('stackForward', Object.values(forwardOptions())),
    TypeError,
    /stackForward: takes one options object, got 10 arguments/,
  ],
  [
    'stackForward with h0 misspelt (an optional field)',
    call('stackForward', [{ ...forwardOptions(), h0: undefined, hO: f32(L * B * H) }]),
    TypeError,
    /stackForward: 'options' has no field 'hO'; its fields are shape, params, x, lengths, h0, c0, ws, y, hT, cT$/,
  ],
  [
    'stackBackward with a field of stackForward',
    call('stackBackward', [{ ...backwardOptions(), y: f32(T * B * H) }]),
    TypeError,
    /stackBackward: 'options' has no field 'y'/,
  ],
  [
    'luongAttentionForward without q',
    call('luongAttentionForward', [{ ...luongForward(), q: undefined }]),
    TypeError,
    /luongAttentionForward: 'q' must be a Float32Array.*got undefined/,
  ],
  [
    'luongAttentionBackward with dq too short',
    call('luongAttentionBackward', [{ ...luongBackward(), dq: f32(T * B * H - 1) }]),
    RangeError,
    /luongAttentionBackward: 'dq' must be .*T\*B\*Hd = 3\*2\*5/,
  ],
  [
    'luongAttentionForward with lengths[0] = S + 1',
    call('luongAttentionForward', [{ ...luongForward(), lengths: Int32Array.from([3, 1]) }]),
    RangeError,
    /luongAttentionForward: 'lengths\[0\]' must be in \[1, S=2\], got 3/,
  ],
  [
    'feedingDecoderForward with c0 for a GRU',
    call('feedingDecoderForward', [{ ...feedingForward(), c0: f32(L * B * H) }]),
    TypeError,
    /feedingDecoderForward: 'c0' is only for LSTM/,
  ],
  [
    'feedingDecoderBackward with h0 misspelt',
    call('feedingDecoderBackward', [{ ...feedingBackward(), hO: f32(L * B * H) }]),
    TypeError,
    /feedingDecoderBackward: 'options' has no field 'hO'/,
  ],
  [
    'feedingDecoderBackward without dattention',
    call('feedingDecoderBackward', [{ ...feedingBackward(), dattention: undefined }]),
    TypeError,
    /feedingDecoderBackward: 'dattention' must be a Float32Array.*got undefined/,
  ],
  [
    'seq2seqBeamSearch({})',
    call('seq2seqBeamSearch', [{}]),
    TypeError,
    /seq2seqBeamSearch: 'decoder' must be an object, got undefined/,
  ],
  [
    'seq2seqBeamSearch called with positional arguments',
    call('seq2seqBeamSearch', [{}, f32(1)]),
    TypeError,
    /seq2seqBeamSearch: takes one options object, got 2 arguments/,
  ],
  ['stackForward without ws', fwd({ ws: undefined }), TypeError, /'ws'.*got undefined/],
  ['LSTM without cT', fwd({ cT: null }), TypeError, /'cT' must be a Float32Array.*got null/],
  [
    'stackBackward without dparams',
    bwd({ dparams: undefined }),
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
    fwd({ shape: [T, B, I, H, L] }),
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
  ['an empty x', fwd({ x: f32(0) }), RangeError, /'x' must be .*length 24.*got length 0/],
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
    fwd({ lengths: Int32Array.from([0, 3]) }),
    RangeError,
    /'lengths\[0\]' must be in \[1, T=3\], got 0/,
  ],
  [
    'lengths[1] = T + 1',
    fwd({ lengths: Int32Array.from([3, 4]) }),
    RangeError,
    /'lengths\[1\]' must be in \[1, T=3\], got 4/,
  ],
  [
    'lengths[1] negative',
    bwd({ lengths: Int32Array.from([1, -3]) }),
    RangeError,
    /stackBackward: 'lengths\[1\]'/,
  ],
  // LSTM-only arguments given to other cells.
  ['c0 given to a GRU', fwd({ c0: f32(L * B * H) }, 'gru'), TypeError, /'c0' is only for LSTM/],
  [
    'cT given to an RNN',
    fwd({ cT: f32(L * B * H) }, 'rnn_tanh'),
    TypeError,
    /'cT' is only for LSTM/,
  ],
  ['dcT given to a GRU', bwd({ dcT: f32(L * B * H) }, 'gru'), TypeError, /'dcT' is only for LSTM/],
  // Backward without a training forward.
  [
    'stackBackward with training false',
    bwd({ shape: shapeOf('lstm', { training: false }) }),
    RangeError,
    /'shape\.training' must be true/,
  ],
  // A state of another size.
  [
    'h0 of a model with another H',
    fwd({ h0: f32(L * B * (H + 1)) }),
    RangeError,
    /'h0' must be .*L\*B\*H = 2\*2\*5/,
  ],
  ['c0 of a one-layer model', fwd({ c0: f32(B * H) }), RangeError, /'c0' must be .*length 20/],
  ['dhT of another batch', bwd({ dhT: f32(L * (B + 1) * H) }), RangeError, /'dhT'/],
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

  it('accepts the valid options each case changes one field of', () => {
    expect(() => addon.stackForward(forwardOptions('lstm'))).not.toThrow();
    expect(() => addon.stackBackward(backwardOptions('gru'))).not.toThrow();
    expect(() => addon.luongAttentionForward(luongForward())).not.toThrow();
    expect(() => addon.luongAttentionBackward(luongBackward())).not.toThrow();
    expect(() => addon.feedingDecoderForward(feedingForward())).not.toThrow();
    expect(() => addon.feedingDecoderBackward(feedingBackward())).not.toThrow();
  });

  it('writes nothing when an argument is rejected', () => {
    const { params, x, y, hT, ...rest } = forwardOptions('lstm');
    params.fill(0.1);
    x.fill(1);
    y.fill(7);
    hT.fill(7);
    // A workspace that is too small: checked before anything runs.
    const options = { ...rest, params, x, y, hT, ws: f32(3) };
    expectThrows(call('stackForward', [options]), RangeError, /'ws'/);
    expect(y.every((v) => v === 7) && hT.every((v) => v === 7)).toBe(true);
  });
});

describe('async twins reject with the same errors', () => {
  const asyncCases: [string, () => unknown, ErrorClass, RegExp][] = [
    [
      'stackForwardAsync with x as Float64Array',
      call('stackForwardAsync', [forwardOptions('lstm', { x: new Float64Array(T * B * I) })]),
      TypeError,
      /stackForward: 'x' must be a Float32Array/,
    ],
    [
      'stackForwardAsync with no arguments',
      call('stackForwardAsync', []),
      TypeError,
      /'options' must be an object/,
    ],
    [
      'stackForwardAsync without a shape',
      call('stackForwardAsync', [{}]),
      TypeError,
      /'shape' must be an object/,
    ],
    [
      'stackForwardAsync with a field it does not have',
      call('stackForwardAsync', [{ ...forwardOptions('gru'), dparams: f32(1) }]),
      TypeError,
      /stackForward: 'options' has no field 'dparams'/,
    ],
    [
      'stackForwardAsync with lengths out of range',
      call('stackForwardAsync', [forwardOptions('gru', { lengths: Int32Array.from([1, 9]) })]),
      RangeError,
      /'lengths\[1\]'/,
    ],
    [
      'stackForwardAsync with an unknown cell',
      call('stackForwardAsync', [
        forwardOptions('lstm', { shape: shapeOf('lstm', { cell: 'bilstm' as never }) }),
      ]),
      RangeError,
      /'shape\.cell'/,
    ],
    [
      'stackForwardAsync with dropout NaN',
      call('stackForwardAsync', [
        forwardOptions('lstm', { shape: shapeOf('lstm', { dropout: NaN }) }),
      ]),
      RangeError,
      /'shape\.dropout'/,
    ],
    [
      'stackForwardAsync with c0 for a GRU',
      call('stackForwardAsync', [forwardOptions('gru', { c0: f32(L * B * H) })]),
      TypeError,
      /'c0' is only for LSTM/,
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
    const a = forwardOptions('gru');
    const b = forwardOptions('gru');
    for (const options of [a, b]) {
      options.params.forEach((_, i, p) => (p[i] = Math.sin(i)));
      options.x.forEach((_, i, x) => (x[i] = Math.cos(i)));
    }
    await expect(addon.stackForwardAsync(a)).resolves.toBeUndefined();
    addon.stackForward(b);
    expect(a.y).toEqual(b.y);
    expect(a.y.some((v) => v !== 0)).toBe(true);
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any */

describe("shapes past the kernels' limits (each in a child process, which must survive)", () => {
  // Each size is within the argument parser's range ([1, 2^30]) but their products are not:
  // T*B above INT_MAX, 4*H above INT_MAX, or a workspace far beyond memory. The kernels check
  // these; their error must still reach JS as a RangeError, not abort the process.
  const prelude = String.raw`
    const root = process.argv[1];
    const addon = require(process.argv[2]);
    const { LSTM, LanguageModel } = require(root + '/lib/index.ts');
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
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script, ROOT, addonPath], {
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
