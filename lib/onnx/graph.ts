// The pieces every rnnkit ONNX export is built from, as onnx-proto (protobufjs) messages: a graph
// builder with fresh names and typed initializers, a recurrent stack as one LSTM/GRU/RNN node per
// layer, and the ModelProto around a finished graph (IR version, opset, rnnkit metadata).
import { onnx } from 'onnx-proto';

import type { RecurrentStack } from '../nn/recurrent';
import { IR_VERSION, modelChecksums, valueInfo, type IoSpec } from './format';
import { CHECKSUMS_KEY, checksumMetadata } from '../checkpoint/verify';

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

export const int = (name: string, i: number): onnx.IAttributeProto => ({
  name,
  type: AttributeType.INT,
  i,
});
export const ints = (name: string, values: number[]): onnx.IAttributeProto => ({
  name,
  type: AttributeType.INTS,
  ints: values,
});
export const string = (name: string, value: string): onnx.IAttributeProto => ({
  name,
  type: AttributeType.STRING,
  s: new TextEncoder().encode(value),
});
const strings = (name: string, values: string[]): onnx.IAttributeProto => ({
  name,
  type: AttributeType.STRINGS,
  strings: values.map((v) => new TextEncoder().encode(v)),
});

/** Nodes and initializers in the order they are added; fresh names for intermediate values. */
export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];

  /** Adds a node and returns its output names: `outputs` itself, or that many fresh names. */
  add(
    op: string,
    inputs: string[],
    outputs: number | string[],
    attribute: onnx.IAttributeProto[] = [],
  ): string[] {
    const name = `${op}_${this.nodes.length}`;
    const output =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => `${name}.out${i}`)
        : outputs;
    this.nodes.push({ name, opType: op, input: inputs, output, attribute });
    return output;
  }

  /** A node with one output: its name (`output`, or a fresh one). */
  op(op: string, inputs: string[], attribute: onnx.IAttributeProto[] = [], output?: string) {
    return this.add(op, inputs, output === undefined ? 1 : [output], attribute)[0];
  }

  /** A float32 initializer. raw_data is little-endian, which is every platform Node ships on. */
  floats(name: string, dims: number[], data: Float32Array): string {
    return this.raw(name, dims, DataType.FLOAT, data);
  }

  /** An int8 or a uint8 initializer, as the array's type is. */
  bytes(name: string, dims: number[], data: Int8Array | Uint8Array): string {
    return this.raw(name, dims, data instanceof Int8Array ? DataType.INT8 : DataType.UINT8, data);
  }

  /** The float32 scalar constant `value`, added once per graph under `name`. */
  scalar(name: string, value: number): string {
    return this.once(name, () => this.floats(name, [], Float32Array.of(value)));
  }

  /** `name` when the graph holds that initializer already, else `add()`'s (which adds it). */
  once(name: string, add: () => string): string {
    return this.initializers.some((t) => t.name === name) ? name : add();
  }

  private raw(name: string, dims: number[], dataType: number, data: ArrayBufferView): string {
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name, dims, dataType, rawData });
    return name;
  }

  /** An int64 initializer (axes, split sizes, shapes): 1-D, or a scalar with `scalar`. */
  int64s(name: string, values: number[], scalar = false): string {
    this.initializers.push({
      name,
      dims: scalar ? [] : [values.length],
      dataType: DataType.INT64,
      int64Data: values,
    });
    return name;
  }

  /** The 1-D int64 constant [a] (Squeeze/Unsqueeze axes), added once per graph. */
  axis(a: number): string {
    const name = `axes.${a}`;
    return this.once(name, () => this.int64s(name, [a]));
  }
}

/** A state [L, batch, H] cut into one [1, batch, H] slice per layer. */
export function splitLayers(g: GraphBuilder, prefix: string, L: number, state: string): string[] {
  const name = `${prefix}.state_split`;
  const perLayer = g.once(name, () => g.int64s(name, Array<number>(L).fill(1)));
  return g.add('Split', [state, perLayer], L, [int('axis', 0)]);
}

const RECURRENT_OP = { lstm: 'LSTM', gru: 'GRU', rnn: 'RNN' } as const;

export interface StackOptions {
  /** Initializer name prefix of the stack's weights (`rnn` gives rnn.l0.W, ...). */
  prefix: string;
  /** Initial state, [L, batch, H] each (c for LSTM only); absent: zeros. */
  initial?: { h: string; c: string | null };
  /** Valid steps of each row, int32 [batch] (ONNX's sequence_lens); absent: every row runs all. */
  lengths?: string;
  /** Read each row backwards from its last valid step (ONNX direction 'reverse'). */
  reverse?: boolean;
  /**
   * Layer l's W [1, G*H, I] and R [1, G*H, H] as graph values (an int8 model's, widened from its
   * int8 initializers); absent: float32 initializers of the stack's weights.
   */
  matrices?: (l: number) => { W: string; R: string };
}

/**
 * x [T, batch, I] through every layer of `stack`, one ONNX recurrent node per layer (with the
 * stack's residual Adds): the top layer's output [T, batch, H] and every layer's final state
 * [1, batch, H] (`c` for LSTM only). Weights go in ONNX's gate order (RecurrentStack.onnxWeights).
 */
export function addRecurrentStack(
  g: GraphBuilder,
  stack: RecurrentStack,
  x: string,
  o: StackOptions,
): { y: string; h: string[]; c: string[] } {
  const { numLayers: L, hiddenSize: H, gates: G } = stack;
  const lstm = stack.cell === 'lstm';
  const attrs = [int('hidden_size', H), int('layout', 0)];
  if (o.reverse) attrs.push(string('direction', 'reverse'));
  if (stack.cell === 'gru') {
    // rnnkit's (and PyTorch's) GRU applies the reset gate after the recurrent matmul.
    attrs.push(int('linear_before_reset', 1));
  } else if (stack.cell === 'rnn') {
    attrs.push(strings('activations', [stack.cellName === 'rnn_relu' ? 'Relu' : 'Tanh']));
  }
  // The [L, batch, H] state inputs are cut into one [1, batch, H] slice per layer, the shape the
  // recurrent operators take as initial_h / initial_c.
  const initial = o.initial;
  const h0 = initial ? splitLayers(g, o.prefix, L, initial.h) : [];
  const c0 = initial?.c && lstm ? splitLayers(g, o.prefix, L, initial.c) : [];
  const h: string[] = [];
  const c: string[] = [];
  for (let l = 0; l < L; l++) {
    const w = stack.onnxWeights(l);
    const p = `${o.prefix}.l${l}`;
    const m = o.matrices?.(l) ?? {
      W: g.floats(`${p}.W`, [1, G * H, l === 0 ? stack.inputSize : H], w.W),
      R: g.floats(`${p}.R`, [1, G * H, H], w.R),
    };
    const inputs = [
      x,
      m.W,
      m.R,
      g.floats(`${p}.B`, [1, 2 * G * H], w.B),
      o.lengths ?? '',
      ...(initial ? [h0[l], ...(lstm ? [c0[l]] : [])] : []),
    ];
    // Trailing optional inputs left empty are dropped, as ONNX allows.
    while (inputs[inputs.length - 1] === '') inputs.pop();
    const out = g.add(RECURRENT_OP[stack.cell], inputs, lstm ? 3 : 2, attrs);
    // Y is [T, num_directions = 1, batch, H]; the next layer takes [T, batch, H].
    let y = g.op('Squeeze', [out[0], g.axis(1)]);
    if (stack.residual && l > 0) y = g.op('Add', [y, x]);
    x = y;
    h.push(out[1]);
    if (lstm) c.push(out[2]);
  }
  return { y: x, h, c };
}

export interface ModelParts {
  opset: number;
  version: string;
  name: string;
  docString: string;
  g: GraphBuilder;
  io: { inputs: IoSpec[]; outputs: IoSpec[] };
  metadata: Record<string, string>;
}

/** The encoded ModelProto of a finished graph. */
export function encodeModel(m: ModelParts): Uint8Array {
  const proto: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: m.opset }],
    producerName: 'rnnkit',
    producerVersion: m.version,
    docString: m.docString,
    graph: {
      name: m.name,
      node: m.g.nodes,
      initializer: m.g.initializers,
      input: m.io.inputs.map(valueInfo),
      output: m.io.outputs.map(valueInfo),
    },
    metadataProps: Object.entries(m.metadata).map(([key, value]) => ({ key, value })),
  };
  const { tensors, rest } = modelChecksums(proto);
  proto.metadataProps!.push({ key: CHECKSUMS_KEY, value: checksumMetadata(tensors, rest) });
  return onnx.ModelProto.encode(onnx.ModelProto.create(proto)).finish();
}
