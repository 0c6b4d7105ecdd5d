// Bad calls through the TypeScript classes (layers, models, optimizers): each throws a TypeError
// or RangeError naming the argument at fault, and the layers still compute afterwards.
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
} from '../../lib/index';
import { type Case, expectThrows, T, B, I, H, L, f32 } from '../helpers/bad-input';

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
