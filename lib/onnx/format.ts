// What an rnnkit .onnx file holds beyond the graph, shared by the exporter and the loaders: the
// graph's input/output names, the metadata keys, and the checks that a file is one rnnkit wrote
// (or could have written) for a given model spec.
import { onnx } from 'onnx-proto';

import type { LanguageModelSpec } from '../models/language-model';
import type { CellType } from '../nn/recurrent';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';

export type OnnxKind = 'step' | 'sequence';

export const FORMAT = 'rnnkit';
export const MIN_OPSET = 14;
export const MAX_OPSET = 17;
export const IR_VERSION = 8;

/** Graph input and output names; `c0`/`cT` (the LSTM cell state) exist for LSTM models only. */
export const NAMES = {
  tokens: 'tokens',
  h0: 'h0',
  c0: 'c0',
  logits: 'logits',
  hT: 'hT',
  cT: 'cT',
} as const;

/** Symbolic (dim_param) names of the dynamic axes. */
export const BATCH_AXIS = 'batch';
export const TIME_AXIS = 'time';

/** What `readOnnxModel` learns from a file. */
export interface OnnxModelInfo {
  kind: OnnxKind;
  spec: LanguageModelSpec;
  /** The tokenizer's JSON, or null when the model was exported without a tokenizer. */
  tokenizer: TokenizerJSON | null;
  /** The rnnkit version that wrote the file. */
  version: string;
  opset: number;
}

type Dim = number | string;

/** One graph input or output: element type and dims (a number, or a dim_param name). */
interface IoSpec {
  name: string;
  elemType: onnx.TensorProto.DataType;
  dims: Dim[];
}

/** The inputs and outputs a model of this spec and kind has, in order. */
export function graphIo(
  spec: Pick<LanguageModelSpec, 'cell' | 'numLayers' | 'hiddenSize' | 'vocabSize'>,
  kind: OnnxKind,
): { inputs: IoSpec[]; outputs: IoSpec[] } {
  const F = onnx.TensorProto.DataType.FLOAT;
  const time: Dim = kind === 'step' ? 1 : TIME_AXIS;
  const state = [spec.numLayers, BATCH_AXIS, spec.hiddenSize];
  const lstm = spec.cell === 'lstm';
  const inputs: IoSpec[] = [
    { name: NAMES.tokens, elemType: onnx.TensorProto.DataType.INT64, dims: [time, BATCH_AXIS] },
    { name: NAMES.h0, elemType: F, dims: state },
  ];
  const outputs: IoSpec[] = [
    { name: NAMES.logits, elemType: F, dims: [time, BATCH_AXIS, spec.vocabSize] },
    { name: NAMES.hT, elemType: F, dims: state },
  ];
  if (lstm) {
    inputs.push({ name: NAMES.c0, elemType: F, dims: state });
    outputs.push({ name: NAMES.cT, elemType: F, dims: state });
  }
  return { inputs, outputs };
}

export function valueInfo(io: IoSpec): onnx.IValueInfoProto {
  return {
    name: io.name,
    type: {
      tensorType: {
        elemType: io.elemType,
        shape: {
          dim: io.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/** int64 fields decode as protobufjs Long objects (or numbers when `long` is absent). */
function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

function describeIo(v: onnx.IValueInfoProto): string {
  const t = v.type?.tensorType;
  if (!t) return `'${v.name}' (not a tensor)`;
  const type = onnx.TensorProto.DataType[t.elemType ?? 0] ?? String(t.elemType);
  const dims = (t.shape?.dim ?? []).map((d) => d.dimParam || String(toNumber(d.dimValue)));
  return `'${v.name}' ${type.toLowerCase()} [${dims.join(', ')}]`;
}

/** Compares a graph's inputs or outputs with what the spec needs; says what differs, if anything. */
function ioProblem(what: string, found: onnx.IValueInfoProto[], want: IoSpec[]): string | null {
  const names = found.map((v) => v.name);
  const wanted = want.map((w) => w.name);
  if (names.length !== wanted.length || names.some((n, i) => n !== wanted[i])) {
    return `its ${what} are [${names.join(', ')}], expected [${wanted.join(', ')}]`;
  }
  for (const [i, w] of want.entries()) {
    const t = found[i].type?.tensorType;
    const dims = t?.shape?.dim ?? [];
    const same =
      t?.elemType === w.elemType &&
      dims.length === w.dims.length &&
      // A named (dynamic) axis must stay dynamic; a fixed one must have the same size.
      dims.every((d, k) => {
        const expected = w.dims[k];
        return typeof expected === 'number'
          ? !d.dimParam && toNumber(d.dimValue) === expected
          : !!d.dimParam;
      });
    if (!same) {
      const expected = valueInfo(w);
      return `${what.slice(0, -1)} ${describeIo(found[i])} does not match the model, expected ${describeIo(expected)}`;
    }
  }
  return null;
}

const CELLS: readonly CellType[] = ['rnn', 'lstm', 'gru'];

function parseSpec(text: string): LanguageModelSpec {
  const spec = JSON.parse(text) as Record<string, unknown>;
  const positive = (k: string) => Number.isSafeInteger(spec[k]) && (spec[k] as number) > 0;
  const bad = ['vocabSize', 'embeddingSize', 'hiddenSize', 'numLayers'].find((k) => !positive(k));
  if (bad) throw new Error(`'${bad}' must be a positive integer, got ${JSON.stringify(spec[bad])}`);
  if (!CELLS.includes(spec.cell as CellType)) {
    throw new Error(`'cell' must be one of ${CELLS.join(', ')}, got ${JSON.stringify(spec.cell)}`);
  }
  if (spec.nonlinearity !== 'tanh' && spec.nonlinearity !== 'relu') {
    throw new Error(
      `'nonlinearity' must be tanh or relu, got ${JSON.stringify(spec.nonlinearity)}`,
    );
  }
  return spec as unknown as LanguageModelSpec;
}

/**
 * Decodes an .onnx file's bytes and checks that it is an rnnkit language model whose graph inputs
 * and outputs agree with the model spec in its metadata. Throws one Error naming `file` and the
 * problem; never returns a model that the generator would misread.
 */
export function readOnnxModel(bytes: Uint8Array, file: string): OnnxModelInfo {
  const fail = (problem: string): never => {
    throw new Error(`${file}: ${problem}`);
  };
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    return fail(`not a valid ONNX model (${(error as Error).message})`);
  }
  const graph = model.graph;
  if (!graph?.node?.length) {
    return fail(bytes.length === 0 ? 'the file is empty' : 'not an ONNX model (it has no graph)');
  }
  const meta = new Map(model.metadataProps.map((p) => [p.key, p.value ?? '']));
  if (meta.get('format') !== FORMAT) {
    return fail(
      `not an rnnkit model: its metadata has no format '${FORMAT}' ` +
        '(export it with `rnnkit export` or exportOnnx)',
    );
  }
  const json = (key: string): string => meta.get(key) ?? fail(`its metadata has no '${key}'`);
  const kind = json('kind');
  if (kind !== 'step' && kind !== 'sequence') {
    return fail(`its metadata 'kind' is '${kind}', expected 'step' or 'sequence'`);
  }
  let spec: LanguageModelSpec;
  try {
    spec = parseSpec(json('spec'));
  } catch (error) {
    return fail(`its metadata 'spec' is invalid: ${(error as Error).message}`);
  }
  let tokenizer: TokenizerJSON | null = null;
  const tokenizerText = meta.get('tokenizer');
  if (tokenizerText !== undefined) {
    try {
      tokenizer = JSON.parse(tokenizerText) as TokenizerJSON;
      const size = tokenizerFromJSON(tokenizer).size;
      if (size !== spec.vocabSize) {
        throw new Error(`it has ${size} tokens but the model's vocabulary has ${spec.vocabSize}`);
      }
    } catch (error) {
      return fail(`its metadata 'tokenizer' is invalid: ${(error as Error).message}`);
    }
  }
  const opset = model.opsetImport.find((o) => !o.domain)?.version;
  const { inputs, outputs } = graphIo(spec, kind);
  const problem =
    ioProblem('inputs', graph.input ?? [], inputs) ??
    ioProblem('outputs', graph.output ?? [], outputs);
  if (problem) return fail(problem);
  return {
    kind,
    spec,
    tokenizer,
    version: meta.get('version') ?? 'unknown',
    opset: toNumber(opset),
  };
}
