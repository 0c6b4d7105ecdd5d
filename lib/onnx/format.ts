// What an rnnkit .onnx file holds beyond the graph, shared by the exporter and the loaders: the
// graph's input/output names, the metadata keys, and the checks that a file is one rnnkit wrote
// (or could have written) for a given model spec.
import { onnx } from 'onnx-proto';

import type { LanguageModelSpec } from '../models/language-model';
import type { CellType } from '../nn/recurrent';
import { FORMAT } from '../core/constants';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';
import {
  CHECKSUMS_KEY,
  checkFinite,
  verifyChecksums,
  type Checksummed,
  type LoadOptions,
} from '../checkpoint/verify';

export type OnnxKind = 'step' | 'sequence';

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
  /** 'int8': the step's products run on int8 weights (onnx/int8.ts); else float32. */
  weights: OnnxWeights;
}

export const ONNX_WEIGHTS = ['float32', 'int8'] as const;
export type OnnxWeights = (typeof ONNX_WEIGHTS)[number];

type Dim = number | string;

/** One graph input or output: element type and dims (a number, or a dim_param name). */
export interface IoSpec {
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

/**
 * A metadata spec as an object whose `positive` fields are positive integers, whose `booleans`
 * are true or false, whose `dropout` (when present) is a number in [0, 1) and whose `cell` is a
 * cell type; throws naming the first field that is not.
 */
export function parseSpecFields(
  text: string,
  positive: string[],
  booleans: string[],
): Record<string, unknown> {
  const spec = JSON.parse(text) as Record<string, unknown>;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new Error('it is not a JSON object');
  }
  const ok = (k: string) => Number.isSafeInteger(spec[k]) && (spec[k] as number) > 0;
  const bad = positive.find((k) => !ok(k));
  if (bad) throw new Error(`'${bad}' must be a positive integer, got ${JSON.stringify(spec[bad])}`);
  const notBool = booleans.find((k) => typeof spec[k] !== 'boolean');
  if (notBool) {
    throw new Error(`'${notBool}' must be true or false, got ${JSON.stringify(spec[notBool])}`);
  }
  const d = spec.dropout;
  if (d !== undefined && !(typeof d === 'number' && d >= 0 && d < 1)) {
    throw new Error(`'dropout' must be a number in [0, 1), got ${JSON.stringify(d)}`);
  }
  if (!CELLS.includes(spec.cell as CellType)) {
    throw new Error(`'cell' must be one of ${CELLS.join(', ')}, got ${JSON.stringify(spec.cell)}`);
  }
  return spec;
}

function parseSpec(text: string): LanguageModelSpec {
  const spec = parseSpecFields(
    text,
    ['vocabSize', 'embeddingSize', 'hiddenSize', 'numLayers'],
    ['residual', 'tieWeights'],
  );
  if (spec.nonlinearity !== 'tanh' && spec.nonlinearity !== 'relu') {
    throw new Error(
      `'nonlinearity' must be tanh or relu, got ${JSON.stringify(spec.nonlinearity)}`,
    );
  }
  return spec as unknown as LanguageModelSpec;
}

/**
 * What an ONNX file's checksums cover: each initializer (its data type, dims and encoded
 * TensorProto) and the rest of the model (graph, inputs, outputs, metadata: the model encoded
 * without its initializers and its checksums).
 */
export function modelChecksums(model: onnx.IModelProto): {
  tensors: Record<string, Checksummed>;
  rest: Uint8Array;
} {
  const rest = onnx.ModelProto.encode({
    ...model,
    graph: { ...model.graph, initializer: [] },
    metadataProps: (model.metadataProps ?? []).filter((p) => p.key !== CHECKSUMS_KEY),
  }).finish();
  return { tensors: initializerChecksums(model.graph?.initializer ?? []), rest };
}

/** What each initializer's checksum covers: its data type, dims and encoded TensorProto. */
function initializerChecksums(initializers: onnx.ITensorProto[]): Record<string, Checksummed> {
  return Object.fromEntries(
    initializers.map((t) => [
      t.name ?? '',
      {
        dtype: String(t.dataType ?? 0),
        shape: (t.dims ?? []).map(toNumber),
        bytes: onnx.TensorProto.encode(t).finish(),
      },
    ]),
  );
}

/**
 * The float weights' values, for the finite check: initializers with at least one dimension. A
 * scalar is a graph constant (the attention mask's -Infinity), not a weight.
 */
function floatInitializers(
  initializers: onnx.ITensorProto[],
): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const t of initializers) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || !t.dims?.length) continue;
    // raw_data need not be 4-byte aligned in the decoded buffer: copy it.
    const data = t.rawData?.length
      ? new Float32Array(Uint8Array.from(t.rawData).buffer)
      : Float32Array.from(t.floatData ?? []);
    out[t.name ?? ''] = { shape: (t.dims ?? []).map(toNumber), data };
  }
  return out;
}

/** A decoded rnnkit .onnx file: its metadata and graph, and failures that name the file. */
export interface RnnkitFile {
  model: onnx.ModelProto;
  meta: Map<string, string>;
  /** Throws one Error naming the file and the problem. */
  fail(problem: string): never;
  /** The metadata value of `key`; fails when it is missing. */
  required(key: string): string;
  /** The tokenizer JSON under `key` (null when absent), checked to have `size` tokens. */
  tokenizer(key: string, size: number): TokenizerJSON | null;
  /** Fails unless the graph's inputs and outputs are exactly these. */
  checkIo(io: { inputs: IoSpec[]; outputs: IoSpec[] }): void;
  opset: number;
}

/**
 * Decodes an .onnx file's bytes and checks that rnnkit wrote it (metadata format 'rnnkit');
 * throws one Error naming `file` otherwise.
 */
export function openRnnkitFile(
  bytes: Uint8Array,
  file: string,
  options: LoadOptions = {},
): RnnkitFile {
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
  const meta = new Map(model.metadataProps.map((p) => [p.key ?? '', p.value ?? '']));
  if (meta.get('format') !== FORMAT) {
    return fail(
      `not an rnnkit model: its metadata has no format '${FORMAT}' ` +
        '(export it with `rnnkit export` or exportOnnx)',
    );
  }
  const initializers = graph.initializer ?? [];
  const sums = modelChecksums(model);
  verifyChecksums(file, meta.get(CHECKSUMS_KEY), sums.tensors, {
    name: 'graph or metadata',
    bytes: sums.rest,
  });
  checkFinite(file, floatInitializers(initializers), options);
  return {
    model,
    meta,
    fail,
    required: (key) => meta.get(key) ?? fail(`its metadata has no '${key}'`),
    tokenizer(key, size) {
      const text = meta.get(key);
      if (text === undefined) return null;
      try {
        const json = JSON.parse(text) as TokenizerJSON;
        const n = tokenizerFromJSON(json).size;
        if (n !== size)
          throw new Error(`it has ${n} tokens but the model's vocabulary has ${size}`);
        return json;
      } catch (error) {
        return fail(`its metadata '${key}' is invalid: ${(error as Error).message}`);
      }
    },
    checkIo(io) {
      const problem =
        ioProblem('inputs', graph.input ?? [], io.inputs) ??
        ioProblem('outputs', graph.output ?? [], io.outputs);
      if (problem) fail(problem);
    },
    opset: toNumber(model.opsetImport.find((o) => !o.domain)?.version),
  };
}

/** A file's metadata 'weights' (absent: float32), checked to be one rnnkit writes. */
export function weightsOf(f: RnnkitFile): OnnxWeights {
  const weights = (f.meta.get('weights') ?? 'float32') as OnnxWeights;
  if (!ONNX_WEIGHTS.includes(weights)) {
    return f.fail(`its metadata 'weights' is '${weights}', expected ${ONNX_WEIGHTS.join(' or ')}`);
  }
  return weights;
}

/** The metadata `kind` of the two halves of an exported sequence-to-sequence model. */
export const SEQ2SEQ_KINDS = ['seq2seq-encoder', 'seq2seq-decoder'] as const;

/**
 * Decodes an .onnx file's bytes and checks that it is an rnnkit language model whose graph inputs
 * and outputs agree with the model spec in its metadata. Throws one Error naming `file` and the
 * problem; never returns a model that the generator would misread.
 */
export function readOnnxModel(
  bytes: Uint8Array,
  file: string,
  options: LoadOptions = {},
): OnnxModelInfo {
  const f = openRnnkitFile(bytes, file, options);
  const kind = f.required('kind');
  if ((SEQ2SEQ_KINDS as readonly string[]).includes(kind)) {
    return f.fail(
      `it holds the ${kind.slice(8)} of a sequence-to-sequence model, not a language model; ` +
        'load it with OnnxSeq2Seq',
    );
  }
  if (kind !== 'step' && kind !== 'sequence') {
    return f.fail(`its metadata 'kind' is '${kind}', expected 'step' or 'sequence'`);
  }
  let spec: LanguageModelSpec;
  try {
    spec = parseSpec(f.required('spec'));
  } catch (error) {
    return f.fail(`its metadata 'spec' is invalid: ${(error as Error).message}`);
  }
  const weights = weightsOf(f);
  if (weights === 'int8' && kind !== 'step') {
    return f.fail(`it is an int8 ${kind} model; rnnkit writes int8 step models only`);
  }
  const tokenizer = f.tokenizer('tokenizer', spec.vocabSize);
  f.checkIo(graphIo(spec, kind));
  const version = f.meta.get('version') ?? 'unknown';
  return { kind, spec, tokenizer, version, opset: f.opset, weights };
}
