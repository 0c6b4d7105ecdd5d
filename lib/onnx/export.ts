// ONNX export of a LanguageModel: Gather (embedding) -> one LSTM/GRU/RNN node per layer (with
// residual Adds) -> Gemm (decoder), built from the pieces in graph.ts; an int8 model's step with
// its cells written out in integer products (int8.ts). Every layer's state is an explicit graph
// input and output, so the runtime that runs the file owns the state.
import { writeFileAtomic } from '../core/atomic';
import { LanguageModelNetwork } from '../models/language-model';
import { checkInt } from '../core/validate';
import { FORMAT, VERSION } from '../core/constants';
import { MAX_OPSET, MIN_OPSET, NAMES, graphIo, type OnnxKind } from './format';
import { GraphBuilder, addRecurrentStack, encodeModel, int } from './graph';
import { addInt8Step } from './int8';

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

/** The model as an encoded ONNX ModelProto. */
export function buildOnnx(model: LanguageModelNetwork, options: ExportOptions): Uint8Array {
  if (!(model instanceof LanguageModelNetwork)) {
    throw new TypeError('exportOnnx: model must be a LanguageModel');
  }
  const kind = options.kind;
  if (kind !== 'step' && kind !== 'sequence') {
    throw new RangeError(`kind must be 'step' or 'sequence', got ${JSON.stringify(kind)}`);
  }
  const opset = checkInt('opset', options.opset ?? MAX_OPSET, MIN_OPSET, MAX_OPSET);
  const int8 = model.quantization?.dtype === 'int8';
  if (int8 && kind !== 'step') {
    throw new RangeError(
      `kind '${kind}': an int8 model exports as a step model only (kind 'step'), its cells ` +
        'written out with integer products',
    );
  }
  const s = model.spec;
  const g = new GraphBuilder();
  if (int8) addInt8Step(g, model);
  else addFloatGraph(g, model);

  const version = VERSION;
  const metadata: Record<string, string> = {
    format: FORMAT,
    version,
    kind,
    spec: JSON.stringify(s),
  };
  if (int8) metadata.weights = 'int8';
  if (model.tokenizer) metadata.tokenizer = JSON.stringify(model.tokenizer.toJSON());
  return encodeModel({
    opset,
    version,
    name: `rnnkit_${s.cell}_${kind}`,
    docString: `rnnkit ${model.describe()}, ${kind} model`,
    g,
    io: graphIo(s, kind),
    metadata,
  });
}

/**
 * The float32 graph: Gather (embedding) -> one LSTM/GRU/RNN node per layer -> Gemm (decoder). A
 * bf16 model's weights go in widened, as the values they hold.
 */
function addFloatGraph(g: GraphBuilder, model: LanguageModelNetwork): void {
  const s = model.spec;
  const { hiddenSize: H, vocabSize: V, embeddingSize: E } = s;
  const lstm = s.cell === 'lstm';
  const embedding = g.floats('embedding.weight', [V, E], model.embedding.weight.data);
  const x = g.op('Gather', [embedding, NAMES.tokens]);
  const rnn = addRecurrentStack(g, model.rnn, x, {
    prefix: 'rnn',
    initial: { h: NAMES.h0, c: lstm ? NAMES.c0 : null },
  });
  g.add('Concat', rnn.h, [NAMES.hT], [int('axis', 0)]);
  if (lstm) g.add('Concat', rnn.c, [NAMES.cT], [int('axis', 0)]);

  // Decoder as one Gemm over the [T * batch, H] view, with the weight in its stored [V, H] layout
  // (transB), so a weight tied to the embedding is the same initializer, not a transposed copy.
  const flat = g.op('Reshape', [rnn.y, g.int64s('decoder.in_shape', [-1, H])]);
  const weight = s.tieWeights
    ? embedding
    : g.floats('decoder.weight', [V, H], model.decoder.weight.data);
  const bias = model.decoder.bias ? [g.floats('decoder.bias', [V], model.decoder.bias.data)] : [];
  const z = g.op('Gemm', [flat, weight, ...bias], [int('transB', 1)]);
  const tokensShape = g.op('Shape', [NAMES.tokens]);
  const outShape = g.op('Concat', [tokensShape, g.int64s('decoder.vocab', [V])], [int('axis', 0)]);
  g.add('Reshape', [z, outShape], [NAMES.logits]);
}

/**
 * Writes the model to `path` as ONNX, atomically: a failed export leaves any previous file at
 * `path` untouched.
 */
export async function exportOnnx(
  model: LanguageModelNetwork,
  path: string,
  options: ExportOptions,
): Promise<void> {
  await writeFileAtomic(path, buildOnnx(model, options));
}
