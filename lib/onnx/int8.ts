// The step graph of an int8 LanguageModel (and the pieces an int8 Seq2Seq's graphs share with it,
// seq2seq-export.ts), in standard operators with integer products: ONNX's LSTM/GRU/RNN operators
// take float weights only, so each cell is written out. Every product runs
// rnnkit's own scheme (native/core/qgemm.h, docs/quantization.md): the weights are int8
// initializers W^T [K, N] with one float scale per output column (a row of W); the activations
// are quantized per row at every step (scale = max |row| / 127, q = round(a * (1 / scale)) in
// [-127, 127]); the products sum q_a * q_w in int32, and the result is (sum * scale_w) * scale_a.
// Layer 0 with a small vocabulary (V <= 2E) looks its input pre-activations up in a table, the
// embedding times the widened int8 weight_ih, as the native steps do.
//
// MatMulInteger multiplies both sides as uint8 q + 128 with zero points 128: the sums are the
// same int32 values, and onnxruntime's CPU kernel for uint8 x uint8 is its fast one, where its
// int8 x int8 ran 4x (batch 256) to 24x (batch 1) slower on AVX2 (onnxruntime-node 1.30, a 512 x
// 2048 product). The weights stay int8 in the file; their uint8 form, the table and the widened
// weights are computed from constants alone, which onnxruntime folds once when it loads the model.
import { onnx } from 'onnx-proto';

import type { LanguageModelNetwork } from '../models/language-model';
import type { RecurrentStack } from '../nn/recurrent';
import type { CellName } from '../core/native';
import { int8Values } from '../nn/quantize';
import { NAMES } from './format';
import { GraphBuilder, int, ints, splitLayers } from './graph';

const { FLOAT, UINT8 } = onnx.TensorProto.DataType;

/** An int8 matrix in the graph: W^T [K, N], that as uint8 q + 128, and its N columns' scales. */
export interface Int8Matrix {
  q: string;
  shifted: string;
  scales: string;
}

/** Integer values x in [-128, 127] (float or int8) as uint8 x + 128. */
const shift = (g: GraphBuilder, x: string) =>
  g.op('Cast', [g.op('Add', [x, g.scalar('q.zero', 128)])], [int('to', UINT8)]);

/**
 * W [N, K], rows holding q * scale, as the int8 initializer W^T [K, N] (the layout MatMulInteger
 * multiplies by) and its scales.
 */
export function int8Matrix(g: GraphBuilder, name: string, W: Float32Array, scales: Float32Array) {
  const N = scales.length;
  const K = W.length / N;
  const q = int8Values(W, scales);
  const t = new Int8Array(q.length);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = q[n * K + k];
  const m = g.bytes(name, [K, N], t);
  return {
    q: m,
    shifted: shift(g, g.op('Cast', [m], [int('to', FLOAT)])),
    scales: g.floats(`${name}.scale`, [N], scales),
  };
}

/** The float32 values q * scale of an int8 matrix, W^T [K, N]. */
export const widen = (g: GraphBuilder, m: Int8Matrix) =>
  g.op('Mul', [g.op('Cast', [m.q], [int('to', FLOAT)]), m.scales]);

/**
 * a [..., K] quantized per row: q as uint8 q + 128, and scale [..., 1]. A row of zeros gets the
 * smallest normal scale instead of rnnkit's 1: its q is 0 either way, and so are its products.
 */
function quantize(g: GraphBuilder, a: string): { q: string; scale: string } {
  const max = g.op('ReduceMax', [g.op('Abs', [a])], [ints('axes', [-1]), int('keepdims', 1)]);
  const scale = g.op('Max', [
    g.op('Div', [max, g.scalar('q.levels', 127)]),
    g.scalar('q.min_scale', 2 ** -126),
  ]);
  const inverse = g.op('Div', [g.scalar('q.one', 1), scale]);
  const rounded = g.op('Round', [g.op('Mul', [a, inverse])]);
  const clipped = g.op('Clip', [rounded, g.scalar('q.low', -127), g.scalar('q.levels', 127)]);
  return { q: shift(g, clipped), scale };
}

/**
 * a [..., K] times W^T [K, N] in int8: [..., N], as (sum * scale_w) * scale_a. onnxruntime fuses
 * MatMulInteger -> Cast -> Mul(scale_a * scale_w) -> Add(bias) into one MatMulIntegerToFloat,
 * which (onnxruntime-node 1.30, measured) gets the bias wrong when scale_a has one value per row;
 * in this order the decoder's bias Add stays a node of its own.
 */
function product(
  g: GraphBuilder,
  a: { q: string; scale: string },
  m: Int8Matrix,
  output?: string,
): string {
  const zero = g.once('q.zero_point', () => g.bytes('q.zero_point', [], Uint8Array.of(128)));
  const sums = g.op('MatMulInteger', [a.q, m.shifted, zero, zero]);
  const sum = g.op('Cast', [sums], [int('to', FLOAT)]);
  return g.op('Mul', [g.op('Mul', [sum, m.scales]), a.scale], [], output);
}

/** Splits the last axis of x into parts of these sizes. */
function splitLast(g: GraphBuilder, x: string, sizes: number[]): string[] {
  const name = `split.${sizes.join('_')}`;
  const split = g.once(name, () => g.int64s(name, sizes));
  return g.add('Split', [x, split], sizes.length, [int('axis', -1)]);
}

/** A layer's biases as its cell adds them (GRU: bIn and bHn apart). */
interface CellBias {
  /** b_ih + b_hh of the gates that sum them: every gate, GRU's r and z only. */
  summed: string;
  /** GRU: b_in, added to W_in x, and b_hn, inside r * (W_hn h + b_hn). */
  bIn?: string;
  bHn?: string;
}

/**
 * One cell step: the layer's new h (and c) from its input and recurrent pre-activations px, ph
 * (no bias) and the state, in rnnkit's gate order and arithmetic (native/core/recurrent.cpp).
 */
function cell(
  g: GraphBuilder,
  name: CellName,
  H: number,
  px: string,
  ph: string,
  bias: CellBias,
  h: string,
  c: string | null,
): { h: string; c: string | null } {
  if (name === 'gru') {
    const [xrz, xn] = splitLast(g, px, [2 * H, H]);
    const [hrz, hn] = splitLast(g, ph, [2 * H, H]);
    const rz = g.op('Sigmoid', [g.op('Add', [g.op('Add', [xrz, hrz]), bias.summed])]);
    const [r, z] = splitLast(g, rz, [H, H]);
    const recurrent = g.op('Mul', [r, g.op('Add', [hn, bias.bHn!])]);
    const n = g.op('Tanh', [g.op('Add', [g.op('Add', [xn, bias.bIn!]), recurrent])]);
    return { h: g.op('Add', [n, g.op('Mul', [z, g.op('Sub', [h, n])])]), c: null };
  }
  const pre = g.op('Add', [g.op('Add', [px, ph]), bias.summed]);
  if (name !== 'lstm') return { h: g.op(name === 'rnn_relu' ? 'Relu' : 'Tanh', [pre]), c: null };
  const [ai, af, au, ao] = splitLast(g, pre, [H, H, H, H]);
  const [i, f, o] = [ai, af, ao].map((a) => g.op('Sigmoid', [a]));
  const cNew = g.op('Add', [g.op('Mul', [f, c!]), g.op('Mul', [i, g.op('Tanh', [au])])]);
  return { h: g.op('Mul', [o, g.op('Tanh', [cNew])]), c: cNew };
}

/** Layer l's biases as a CellBias, from its b_ih and b_hh. */
function cellBias(
  g: GraphBuilder,
  p: string,
  gru: boolean,
  H: number,
  bIh: Float32Array,
  bHh: Float32Array,
): CellBias {
  const n = gru ? 2 * H : bIh.length;
  const summed = g.floats(
    `${p}.bias`,
    [n],
    bIh.slice(0, n).map((b, j) => b + bHh[j]),
  );
  if (!gru) return { summed };
  return {
    summed,
    bIn: g.floats(`${p}.bias_in`, [H], bIh.slice(n)),
    bHn: g.floats(`${p}.bias_hn`, [H], bHh.slice(n)),
  };
}

/** What addInt8Stack runs a recurrent stack's step on. */
export interface Int8StackInputs {
  /** Initializer name prefix of the stack's matrices and biases (`rnn` gives rnn.weight_ih_l0). */
  prefix: string;
  /** Each int8 matrix of the stack by its checkpoint name, from its values W [N, K]. */
  matrix: (name: string, W: Float32Array) => Int8Matrix;
  /** The embedding [V, E] as a graph value, V its rows; the stack reads token ids `NAMES.tokens`. */
  embedding: string;
  vocab: number;
  /** A seq2seq decoder's previous attentional state [1, batch, H], fed beside the embedding. */
  feed: string | null;
  /** The state before the step, [L, batch, H] (c for LSTM only). */
  h0: string;
  c0: string | null;
}

/**
 * One step of `stack` with int8 products, as the native packed steps run it (PackedStack,
 * native/core/recurrent.cpp): layer 0's input [embedding; feed] is quantized as one row, or, with
 * no feed and a small vocabulary (V <= 2E), its pre-activations are looked up in a table (the
 * embedding times the widened int8 weight_ih); h is quantized apart. Returns the step's output
 * [1, batch, H] and every layer's new state [1, batch, H].
 */
export function addInt8Stack(
  g: GraphBuilder,
  stack: RecurrentStack,
  o: Int8StackInputs,
): { y: string; h: string[]; c: string[] } {
  const { numLayers: L, hiddenSize: H, inputSize } = stack;
  const lstm = stack.cell === 'lstm';
  const gru = stack.cell === 'gru';
  const E = inputSize - (o.feed ? H : 0);
  const h0 = splitLayers(g, o.prefix, L, o.h0);
  const c0 = o.c0 ? splitLayers(g, o.prefix, L, o.c0) : [];
  const h: string[] = [];
  const c: string[] = [];
  let x = '';
  for (let l = 0; l < L; l++) {
    const w = stack.layerWeights(l);
    const wih = o.matrix(`${o.prefix}.weight_ih_l${l}`, w.weightIh);
    const whh = o.matrix(`${o.prefix}.weight_hh_l${l}`, w.weightHh);
    let px: string;
    if (l === 0 && !o.feed && o.vocab <= 2 * E) {
      const table = g.op('MatMul', [o.embedding, widen(g, wih)]);
      px = g.op('Gather', [table, NAMES.tokens]);
    } else {
      let input = x;
      if (l === 0) {
        input = g.op('Gather', [o.embedding, NAMES.tokens]);
        if (o.feed) input = g.op('Concat', [input, o.feed], [int('axis', -1)]);
      }
      px = product(g, quantize(g, input), wih);
    }
    const ph = product(g, quantize(g, h0[l]), whh);
    const bias = cellBias(g, `${o.prefix}.l${l}`, gru, H, w.biasIh, w.biasHh);
    const next = cell(g, stack.cellName, H, px, ph, bias, h0[l], lstm ? c0[l] : null);
    h.push(next.h);
    if (next.c) c.push(next.c);
    x = stack.residual && l > 0 ? g.op('Add', [next.h, x]) : next.h;
  }
  return { y: x, h, c };
}

/**
 * x [..., K] times the int8 matrix as rnnkit's int8 product (`x` quantized per row), plus the
 * float32 bias [N] in an Add of its own (see product) when there is one; the result is named
 * `output` when given.
 */
export function int8Linear(
  g: GraphBuilder,
  m: Int8Matrix,
  x: string,
  bias: string | null,
  output?: string,
): string {
  if (!bias) return product(g, quantize(g, x), m, output);
  return g.op('Add', [product(g, quantize(g, x), m), bias], [], output);
}

/**
 * Adds the int8 step graph of `model` to `g`: tokens [1, batch] and the state in, logits
 * [1, batch, V] and the state out, under the names float exports use (format.ts NAMES).
 */
export function addInt8Step(g: GraphBuilder, model: LanguageModelNetwork): void {
  const q = model.quantization;
  if (q?.dtype !== 'int8') throw new Error('addInt8Step: the model has no int8 weights');
  const s = model.spec;
  const { vocabSize: V } = s;
  const lstm = s.cell === 'lstm';

  // Each quantized matrix by its checkpoint name, with its scales.
  const matrix = (name: string, W: Float32Array) => int8Matrix(g, name, W, q.scales[name]);
  const decoder = matrix('decoder.weight', model.decoder.weight.data);
  // A tied embedding is the decoder's int8 matrix: W^T [E, V], its column v the token v's row.
  const embedding = s.tieWeights
    ? g.op('Transpose', [widen(g, decoder)])
    : g.floats('embedding.weight', [V, s.embeddingSize], model.embedding.weight.data);
  const stack = addInt8Stack(g, model.rnn, {
    prefix: 'rnn',
    matrix,
    embedding,
    vocab: V,
    feed: null,
    h0: NAMES.h0,
    c0: lstm ? NAMES.c0 : null,
  });
  g.add('Concat', stack.h, [NAMES.hT], [int('axis', 0)]);
  if (lstm) g.add('Concat', stack.c, [NAMES.cT], [int('axis', 0)]);
  const bias = model.decoder.bias;
  int8Linear(
    g,
    decoder,
    stack.y,
    g.floats('decoder.bias', [V], bias ? bias.data : new Float32Array(V)),
    NAMES.logits,
  );
}
