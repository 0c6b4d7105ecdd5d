// ONNX export of a LanguageModel: Gather (embedding) -> one LSTM/GRU/RNN node per layer (with
// residual Adds) -> Gemm (decoder), built as onnx-proto (protobufjs) messages. Every layer's state
// is an explicit graph input and output, so the runtime that runs the file owns the state.
import { onnx } from 'onnx-proto';

import { writeFileAtomic } from '../io/atomic';
import { LanguageModel } from '../models/language-model';
import { native } from '../native';
import { checkInt } from '../nn/parameter';
import {
  FORMAT,
  IR_VERSION,
  MAX_OPSET,
  MIN_OPSET,
  NAMES,
  graphIo,
  valueInfo,
  type OnnxKind,
} from './format';

export interface ExportOptions {
  /**
   * 'step': tokens [1, batch], the model a generation loop calls once per token. 'sequence':
   * tokens [time, batch], for scoring and for priming prompts in one call (it runs single steps
   * too, with time = 1).
   */
  kind: OnnxKind;
  /** ONNX opset, 14 to 17 (default 17). */
  opset?: number;
}

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

const int = (name: string, i: number): onnx.IAttributeProto => ({
  name,
  type: AttributeType.INT,
  i,
});
const strings = (name: string, values: string[]): onnx.IAttributeProto => ({
  name,
  type: AttributeType.STRINGS,
  strings: values.map((v) => new TextEncoder().encode(v)),
});

/** Nodes and initializers in the order they are added; fresh names for intermediate values. */
class GraphBuilder {
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

  /** A float32 initializer. raw_data is little-endian, which is every platform Node ships on. */
  floats(name: string, dims: number[], data: Float32Array): string {
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData });
    return name;
  }

  /** A 1-D int64 initializer (axes, split sizes, shapes). */
  int64s(name: string, values: number[]): string {
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: DataType.INT64,
      int64Data: values,
    });
    return name;
  }
}

const RECURRENT_OP = { lstm: 'LSTM', gru: 'GRU', rnn: 'RNN' } as const;

function recurrentAttributes(model: LanguageModel): onnx.IAttributeProto[] {
  const attrs = [int('hidden_size', model.spec.hiddenSize), int('layout', 0)];
  if (model.spec.cell === 'gru') {
    // rnnkit's (and PyTorch's) GRU applies the reset gate after the recurrent matmul.
    attrs.push(int('linear_before_reset', 1));
  } else if (model.spec.cell === 'rnn') {
    attrs.push(strings('activations', [model.spec.nonlinearity === 'relu' ? 'Relu' : 'Tanh']));
  }
  return attrs;
}

/** The model as an encoded ONNX ModelProto. */
export function buildOnnx(model: LanguageModel, options: ExportOptions): Uint8Array {
  if (!(model instanceof LanguageModel)) {
    throw new TypeError('exportOnnx: model must be a LanguageModel');
  }
  const kind = options.kind;
  if (kind !== 'step' && kind !== 'sequence') {
    throw new RangeError(`kind must be 'step' or 'sequence', got ${JSON.stringify(kind)}`);
  }
  const opset = checkInt('opset', options.opset ?? MAX_OPSET, MIN_OPSET, MAX_OPSET);
  const s = model.spec;
  const { numLayers: L, hiddenSize: H, vocabSize: V, embeddingSize: E } = s;
  const G = model.rnn.gates;
  const lstm = s.cell === 'lstm';
  const g = new GraphBuilder();

  const embedding = g.floats('embedding.weight', [V, E], model.embedding.weight.data);
  let x = g.add('Gather', [embedding, NAMES.tokens], 1)[0];

  // The [L, batch, H] state inputs are cut into one [1, batch, H] slice per layer, the shape the
  // recurrent operators take as initial_h / initial_c.
  const perLayer = g.int64s('state.split', Array<number>(L).fill(1));
  const split = (input: string) => g.add('Split', [input, perLayer], L, [int('axis', 0)]);
  const h0 = split(NAMES.h0);
  const c0 = lstm ? split(NAMES.c0) : [];
  const directionAxis = g.int64s('squeeze.axes', [1]);
  const attrs = recurrentAttributes(model);
  const hT: string[] = [];
  const cT: string[] = [];
  for (let l = 0; l < L; l++) {
    const w = model.rnn.onnxWeights(l);
    const p = `rnn.l${l}`;
    const inputs = [
      x,
      g.floats(`${p}.W`, [1, G * H, l === 0 ? E : H], w.W),
      g.floats(`${p}.R`, [1, G * H, H], w.R),
      g.floats(`${p}.B`, [1, 2 * G * H], w.B),
      '', // sequence_lens: every row runs all T steps
      h0[l],
      ...(lstm ? [c0[l]] : []),
    ];
    const out = g.add(RECURRENT_OP[s.cell], inputs, lstm ? 3 : 2, attrs);
    // Y is [T, num_directions = 1, batch, H]; the next layer and the decoder take [T, batch, H].
    let y = g.add('Squeeze', [out[0], directionAxis], 1)[0];
    if (s.residual && l > 0) y = g.add('Add', [y, x], 1)[0];
    x = y;
    hT.push(out[1]);
    if (lstm) cT.push(out[2]);
  }
  g.add('Concat', hT, [NAMES.hT], [int('axis', 0)]);
  if (lstm) g.add('Concat', cT, [NAMES.cT], [int('axis', 0)]);

  // Decoder as one Gemm over the [T * batch, H] view, with the weight in its stored [V, H] layout
  // (transB), so a weight tied to the embedding is the same initializer, not a transposed copy.
  const flat = g.add('Reshape', [x, g.int64s('decoder.in_shape', [-1, H])], 1)[0];
  const weight = s.tieWeights
    ? embedding
    : g.floats('decoder.weight', [V, H], model.decoder.weight.data);
  const bias = model.decoder.bias ? [g.floats('decoder.bias', [V], model.decoder.bias.data)] : [];
  const z = g.add('Gemm', [flat, weight, ...bias], 1, [int('transB', 1)])[0];
  const tokensShape = g.add('Shape', [NAMES.tokens], 1)[0];
  const outShape = g.add('Concat', [tokensShape, g.int64s('decoder.vocab', [V])], 1, [
    int('axis', 0),
  ])[0];
  g.add('Reshape', [z, outShape], [NAMES.logits]);

  const version = native.info().version;
  const io = graphIo(s, kind);
  const metadata: Record<string, string> = {
    format: FORMAT,
    version,
    kind,
    spec: JSON.stringify(s),
  };
  if (model.tokenizer) metadata.tokenizer = JSON.stringify(model.tokenizer.toJSON());
  const proto = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'rnnkit',
    producerVersion: version,
    docString: `rnnkit ${model.describe()}, ${kind} model`,
    graph: {
      name: `rnnkit_${s.cell}_${kind}`,
      node: g.nodes,
      initializer: g.initializers,
      input: io.inputs.map(valueInfo),
      output: io.outputs.map(valueInfo),
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(proto).finish();
}

/**
 * Writes the model to `path` as ONNX, atomically: a failed export leaves any previous file at
 * `path` untouched.
 */
export async function exportOnnx(
  model: LanguageModel,
  path: string,
  options: ExportOptions,
): Promise<void> {
  await writeFileAtomic(path, buildOnnx(model, options));
}
