// ONNX export of a Seq2Seq as two graphs, built from the pieces in graph.ts:
//   encoder       source ids + lengths -> memory (encoder states), keys, mask, the decoder's h0/c0
//   decoder step  one token per row + state + memory, keys, mask -> logits, next state, attention
// The encoder runs once per source batch; a decoding loop (OnnxSeq2Seq) runs the decoder step
// once per output token, carrying the state and reordering rows between steps for beam search.
// An int8 model's graphs multiply as rnnkit's int8 model does: the decoder step (its stack,
// the attention's query and combine layers, the output layer) and the attention keys in int8
// products (int8.ts), the encoder and the bridge in float32 on the int8 weights widened to
// q * scale, as rnnkit's encoder runs once per source. Every matrix is an int8 initializer.
import { onnx } from 'onnx-proto';

import { writeFileAtomic } from '../core/atomic';
import { Seq2SeqNetwork } from '../models/seq2seq';
import type { Linear } from '../nn/linear';
import type { Quantization } from '../nn/quantize';
import type { RecurrentStack } from '../nn/recurrent';
import { checkInt } from '../core/validate';
import { FORMAT, VERSION } from '../core/constants';
import { MAX_OPSET, MIN_OPSET } from './format';
import { GraphBuilder, addRecurrentStack, encodeModel, int, ints } from './graph';
import { addInt8Stack, int8Linear, int8Matrix, widen } from './int8';
import {
  ENCODER_HASH,
  SEQ2SEQ_NAMES as N,
  seq2seqIo,
  seq2seqOnnxPaths,
  sha256,
  type Seq2SeqPart,
} from './seq2seq-format';

export interface Seq2SeqExportOptions {
  /** ONNX opset, 14 to 17 (default 17). */
  opset?: number;
}

/**
 * How the graphs hold and multiply the weight matrices: float32 initializers, or for an int8
 * model int8 initializers under their checkpoint names (int8.ts) with their scales.
 */
class Matrices {
  constructor(
    private readonly g: GraphBuilder,
    private readonly int8: Quantization | null,
  ) {}

  /**
   * W [N, K] (rows `order`ed, see RecurrentStack.onnxGateOrder) as a float32 value: the
   * initializer, or the int8 one widened to q * scale (onnxruntime folds it when it loads).
   */
  float(name: string, shape: readonly number[], W: Float32Array, order = (x: Float32Array) => x) {
    const g = this.g;
    if (!this.int8) return g.floats(name, [...shape], order(W));
    const m = int8Matrix(g, name, order(W), order(this.int8.scales[name]));
    const rows = g.op('Transpose', [widen(g, m)]);
    return shape.length === 3 ? g.op('Unsqueeze', [rows, g.axis(0)]) : rows;
  }

  /**
   * x [..., K] times W^T for W [N, K] (plus the bias [N], when given): [..., N], in float32 or in
   * rnnkit's int8 product; named `output` when given.
   */
  times(name: string, W: Float32Array, N: number, x: string, bias?: string, output?: string) {
    const g = this.g;
    if (this.int8) {
      const m = int8Matrix(g, name, W, this.int8.scales[name]);
      return int8Linear(g, m, x, bias ?? null, output);
    }
    const w = g.floats(name, [N, W.length / N], W);
    if (bias) return g.op('Gemm', [x, w, bias], [int('transB', 1)], output);
    return g.op('MatMul', [x, g.op('Transpose', [w])], [], output);
  }

  /** One of the attention's matrices (Attention.tensors() names them) times x. */
  attention(model: Seq2SeqNetwork, key: string, x: string, output?: string): string {
    const t = model.attention.tensors()[key];
    return this.times(`attention.${key}`, t.data, t.shape[0], x, undefined, output);
  }

  /** y = x W^T + b for x [N, in] of a layer multiplied in float32 (W widened for int8). */
  linear(name: string, layer: Linear, x: string): string {
    const g = this.g;
    const w = this.float(`${name}.weight`, layer.weight.shape, layer.weight.data);
    const b = layer.bias ? [g.floats(`${name}.bias`, [...layer.bias.shape], layer.bias.data)] : [];
    return g.op('Gemm', [x, w, ...b], [int('transB', 1)]);
  }
}

/**
 * source [S, batch] -> the source embedding -> the encoder stack (and the reverse stack reading
 * each row backwards within its length, ONNX's sequence_lens) -> memory [batch, S, He]; the keys
 * the attention scores read (memory, or memory W^T); the mask of valid positions; the bridge from
 * the top layer's final state (both directions) to the decoder's initial state.
 */
function encoderGraph(model: Seq2SeqNetwork, int8: Quantization | null): GraphBuilder {
  const s = model.spec;
  const g = new GraphBuilder();
  const m = new Matrices(g, int8);
  // Each layer's W and R from the int8 initializers of its weight_ih and weight_hh.
  const stackMatrices = (stack: RecurrentStack, prefix: string) =>
    int8
      ? {
          matrices: (l: number) => {
            const w = stack.layerWeights(l);
            const GH = stack.gates * stack.hiddenSize;
            const widened = (kind: string, W: Float32Array) =>
              m.float(`${prefix}.weight_${kind}_l${l}`, [1, GH, W.length / GH], W, (x) =>
                stack.onnxGateOrder(x),
              );
            return { W: widened('ih', w.weightIh), R: widened('hh', w.weightHh) };
          },
        }
      : {};
  const top = s.encoderLayers - 1;
  const axis = (n: number) => [int('axis', n)];
  const table = model.sourceEmbedding.weight;
  const x = g.op('Gather', [
    g.floats('source_embedding.weight', [...table.shape], table.data),
    N.source,
  ]);
  const lengths = g.op('Cast', [N.sourceLengths], [int('to', onnx.TensorProto.DataType.INT32)]);
  const fwd = addRecurrentStack(g, model.encoder, x, {
    prefix: 'encoder',
    lengths,
    ...stackMatrices(model.encoder, 'encoder'),
  });
  let states = fwd.y;
  let finalH = fwd.h[top];
  let finalC = fwd.c[top];
  if (model.encoderReverse) {
    const bwd = addRecurrentStack(g, model.encoderReverse, x, {
      prefix: 'encoder_reverse',
      lengths,
      reverse: true,
      ...stackMatrices(model.encoderReverse, 'encoder_reverse'),
    });
    states = g.op('Concat', [fwd.y, bwd.y], axis(2));
    finalH = g.op('Concat', [finalH, bwd.h[top]], axis(2));
    if (finalC) finalC = g.op('Concat', [finalC, bwd.c[top]], axis(2));
  }
  g.op('Transpose', [states], [ints('perm', [1, 0, 2])], N.memory);

  const keyWeight = { dot: null, general: 'score_weight', additive: 'key_weight' }[s.attention];
  if (keyWeight) m.attention(model, keyWeight, N.memory, N.keys);
  else g.op('Identity', [N.memory], [], N.keys);

  // mask [batch, S]: position s < source_lengths[b].
  const zero = g.int64s('zero', [0], true);
  const steps = g.op('Gather', [g.op('Shape', [N.source]), zero]);
  const positions = g.op('Range', [zero, steps, g.int64s('one', [1], true)]);
  const column = g.op('Unsqueeze', [N.sourceLengths, g.axis(1)]);
  g.op('Less', [g.op('Unsqueeze', [positions, g.axis(0)]), column], [], N.mask);

  // Bridge: [batch, He] -> [batch, L * H] -> [L, batch, H].
  const layerMajor = g.int64s('bridge.shape', [-1, s.decoderLayers, s.hiddenSize]);
  const bridge = (name: string, layer: Linear, final: string, out: string) => {
    const y = m.linear(name, layer, g.op('Squeeze', [final, g.axis(0)]));
    g.op('Transpose', [g.op('Reshape', [y, layerMajor])], [ints('perm', [1, 0, 2])], out);
  };
  bridge('bridge_h', model.bridgeH, finalH, N.h0);
  if (model.bridgeC) bridge('bridge_c', model.bridgeC, finalC, N.c0);
  return g;
}

/**
 * tokens [1, batch] -> the target embedding (beside feed0 with input feeding) -> the decoder
 * stack from h0/c0 -> q [batch, H] -> scores against the keys, masked softmax -> attention,
 * context over memory -> tanh(W_c [context; q]) -> the output layer -> logits [1, batch, V].
 */
function decoderGraph(model: Seq2SeqNetwork, int8: Quantization | null): GraphBuilder {
  const s = model.spec;
  const g = new GraphBuilder();
  const m = new Matrices(g, int8);
  const lstm = s.cell === 'lstm';
  const table = model.targetEmbedding.weight;
  const embedding = g.floats('target_embedding.weight', [...table.shape], table.data);
  const feed = s.inputFeeding ? N.feed0 : null;
  let dec: { y: string; h: string[]; c: string[] };
  if (int8) {
    const matrix = (name: string, W: Float32Array) => int8Matrix(g, name, W, int8.scales[name]);
    dec = addInt8Stack(g, model.decoder, {
      prefix: 'decoder',
      matrix,
      embedding,
      vocab: s.targetVocab,
      feed,
      h0: N.h0,
      c0: lstm ? N.c0 : null,
    });
  } else {
    const x = g.op('Gather', [embedding, N.tokens]);
    dec = addRecurrentStack(
      g,
      model.decoder,
      feed ? g.op('Concat', [x, feed], [int('axis', 2)]) : x,
      {
        prefix: 'decoder',
        initial: { h: N.h0, c: lstm ? N.c0 : null },
      },
    );
  }
  g.add('Concat', dec.h, [N.hT], [int('axis', 0)]);
  if (lstm) g.add('Concat', dec.c, [N.cT], [int('axis', 0)]);
  const q = g.op('Squeeze', [dec.y, g.axis(0)]);

  let scores: string;
  if (s.attention === 'additive') {
    // v . tanh(W_q q + W_k s): keys [batch, S, A] + (W_q q) [batch, 1, A].
    const query = m.attention(model, 'query_weight', q);
    const hidden = g.op('Tanh', [g.op('Add', [N.keys, g.op('Unsqueeze', [query, g.axis(1)])])]);
    const v = model.attention.tensors().v;
    scores = g.op('MatMul', [hidden, g.floats('attention.v', v.shape, v.data)]);
  } else {
    // keys [batch, S, K] . q [batch, K, 1].
    scores = g.op('Squeeze', [
      g.op('MatMul', [N.keys, g.op('Unsqueeze', [q, g.axis(2)])]),
      g.axis(2),
    ]);
  }
  const masked = g.op('Where', [
    N.mask,
    scores,
    g.floats('attention.masked', [], Float32Array.of(-Infinity)),
  ]);
  const align = g.op('Softmax', [masked], [int('axis', 1)]);
  const context = g.op('Squeeze', [
    g.op('MatMul', [g.op('Unsqueeze', [align, g.axis(1)]), N.memory]),
    g.axis(1),
  ]);
  // [context; q] is one row of the combine layer's input, quantized as one for int8.
  const combined = g.op('Concat', [context, q], [int('axis', 1)]);
  const out = g.op('Tanh', [m.attention(model, 'combine_weight', combined)]);
  const o = model.output;
  const bias = o.bias ? g.floats('output.bias', [...o.bias.shape], o.bias.data) : undefined;
  const logits = m.times('output.weight', o.weight.data, s.targetVocab, out, bias);
  g.op('Unsqueeze', [logits, g.axis(0)], [], N.logits);
  if (s.inputFeeding) g.op('Unsqueeze', [out, g.axis(0)], [], N.feedT);
  g.op('Unsqueeze', [align, g.axis(0)], [], N.attention);
  return g;
}

/**
 * The model as two encoded ONNX ModelProtos. Both carry the spec and the vocabularies in their
 * metadata; the decoder also the SHA-256 of the encoder's bytes, so a loader can tell that the
 * two files belong together.
 */
export function buildSeq2SeqOnnx(
  model: Seq2SeqNetwork,
  options: Seq2SeqExportOptions = {},
): Record<Seq2SeqPart, Uint8Array> {
  if (!(model instanceof Seq2SeqNetwork)) {
    throw new TypeError('exportSeq2SeqOnnx: model must be a Seq2Seq');
  }
  const int8 = model.quantization?.dtype === 'int8' ? model.quantization : null;
  const opset = checkInt('opset', options.opset ?? MAX_OPSET, MIN_OPSET, MAX_OPSET);
  const version = VERSION;
  const metadata: Record<string, string> = {
    format: FORMAT,
    version,
    spec: JSON.stringify(model.spec),
  };
  if (int8) metadata.weights = 'int8';
  if (model.sourceTokenizer) {
    metadata.source_tokenizer = JSON.stringify(model.sourceTokenizer.toJSON());
  }
  if (model.targetTokenizer) {
    metadata.target_tokenizer = JSON.stringify(model.targetTokenizer.toJSON());
  }
  const encode = (part: Seq2SeqPart, g: GraphBuilder, extra: Record<string, string> = {}) =>
    encodeModel({
      opset,
      version,
      name: `rnnkit_seq2seq_${part}`,
      docString: `rnnkit ${model.describe()}, ${part === 'encoder' ? 'encoder' : 'decoder step'}`,
      g,
      io: seq2seqIo(model.spec, part),
      metadata: { ...metadata, kind: `seq2seq-${part}`, ...extra },
    });
  const encoder = encode('encoder', encoderGraph(model, int8));
  const decoder = encode('decoder', decoderGraph(model, int8), { [ENCODER_HASH]: sha256(encoder) });
  return { encoder, decoder };
}

/**
 * Writes the model as `X.encoder.onnx` and `X.decoder.onnx` for `path` = `X.onnx` (see
 * seq2seqOnnxPaths), each atomically; resolves with the two paths.
 */
export async function exportSeq2SeqOnnx(
  model: Seq2SeqNetwork,
  path: string,
  options: Seq2SeqExportOptions = {},
): Promise<Record<Seq2SeqPart, string>> {
  const bytes = buildSeq2SeqOnnx(model, options);
  const paths = seq2seqOnnxPaths(path);
  await writeFileAtomic(paths.encoder, bytes.encoder);
  await writeFileAtomic(paths.decoder, bytes.decoder);
  return paths;
}
