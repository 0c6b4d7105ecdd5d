// What the two files of an exported Seq2Seq hold: the encoder's and the decoder step's input and
// output names and shapes, the file names of the pair, and the checks that a file is the half of
// a pair it claims to be.
import { createHash } from 'node:crypto';
import { onnx } from 'onnx-proto';

import type { Seq2SeqSpec } from '../models/seq2seq';
import type { TokenizerJSON } from '../text';
import {
  BATCH_AXIS,
  SEQ2SEQ_KINDS,
  openRnnkitFile,
  parseSpecFields,
  weightsOf,
  type IoSpec,
  type OnnxWeights,
} from './format';
import type { LoadOptions } from '../checkpoint/verify';

export type Seq2SeqPart = 'encoder' | 'decoder';

/** Graph input and output names; `c0`/`cT` exist for LSTM models, `feed0`/`feedT` with input feeding. */
export const SEQ2SEQ_NAMES = {
  source: 'source',
  sourceLengths: 'source_lengths',
  memory: 'memory',
  keys: 'keys',
  mask: 'mask',
  tokens: 'tokens',
  h0: 'h0',
  c0: 'c0',
  feed0: 'feed0',
  logits: 'logits',
  hT: 'hT',
  cT: 'cT',
  feedT: 'feedT',
  attention: 'attention',
} as const;

/** The source axis (dim_param) of the encoder's inputs and of memory, keys, mask and attention. */
export const SOURCE_AXIS = 'source_time';

/** The metadata key of the decoder that holds the SHA-256 of its encoder file's bytes. */
export const ENCODER_HASH = 'encoder_sha256';

/** What `readOnnxSeq2Seq` learns from a file. */
export interface OnnxSeq2SeqInfo {
  part: Seq2SeqPart;
  spec: Seq2SeqSpec;
  /** The vocabularies' JSON, or null when the model was exported without them. */
  sourceTokenizer: TokenizerJSON | null;
  targetTokenizer: TokenizerJSON | null;
  /** The rnnkit version that wrote the file. */
  version: string;
  opset: number;
  /** The decoder's: the SHA-256 (hex) of the encoder file exported with it. */
  encoderHash: string | null;
  /** 'int8': an int8 model's graphs (seq2seq-export.ts); else float32. */
  weights: OnnxWeights;
}

/** The size of an encoder state (both directions) and of a key, as the attention reads them. */
export function seq2seqSizes(spec: Seq2SeqSpec): { He: number; K: number } {
  const He = spec.encoderHiddenSize * (spec.bidirectional ? 2 : 1);
  // Keys: the encoder states (dot), W_a s of the decoder's size (general), W_k s (additive, whose
  // attention size is the decoder's hidden size).
  return { He, K: spec.attention === 'dot' ? He : spec.hiddenSize };
}

/** The inputs and outputs of the encoder or the decoder step of a model of this spec, in order. */
export function seq2seqIo(
  spec: Seq2SeqSpec,
  part: Seq2SeqPart,
): { inputs: IoSpec[]; outputs: IoSpec[] } {
  const { FLOAT: F, INT64, BOOL } = onnx.TensorProto.DataType;
  const N = SEQ2SEQ_NAMES;
  const { He, K } = seq2seqSizes(spec);
  const B = BATCH_AXIS;
  const S = SOURCE_AXIS;
  const state = [spec.decoderLayers, B, spec.hiddenSize];
  const lstm = spec.cell === 'lstm';
  const source: IoSpec[] = [
    { name: N.memory, elemType: F, dims: [B, S, He] },
    { name: N.keys, elemType: F, dims: [B, S, K] },
    { name: N.mask, elemType: BOOL, dims: [B, S] },
  ];
  const states = (h: string, c: string): IoSpec[] => [
    { name: h, elemType: F, dims: state },
    ...(lstm ? [{ name: c, elemType: F, dims: state }] : []),
  ];
  const feed = (name: string): IoSpec[] =>
    spec.inputFeeding ? [{ name, elemType: F, dims: [1, B, spec.hiddenSize] }] : [];
  if (part === 'encoder') {
    return {
      inputs: [
        { name: N.source, elemType: INT64, dims: [S, B] },
        { name: N.sourceLengths, elemType: INT64, dims: [B] },
      ],
      outputs: [...source, ...states(N.h0, N.c0)],
    };
  }
  return {
    inputs: [
      { name: N.tokens, elemType: INT64, dims: [1, B] },
      ...states(N.h0, N.c0),
      ...feed(N.feed0),
      ...source,
    ],
    outputs: [
      { name: N.logits, elemType: F, dims: [1, B, spec.targetVocab] },
      ...states(N.hT, N.cT),
      ...feed(N.feedT),
      { name: N.attention, elemType: F, dims: [1, B, S] },
    ],
  };
}

/**
 * The two files of the pair that `file` names: `X.encoder.onnx` and `X.decoder.onnx` for
 * `X.onnx`, `X.encoder.onnx`, `X.decoder.onnx` or `X`.
 */
export function seq2seqOnnxPaths(file: string): Record<Seq2SeqPart, string> {
  const stem = file.replace(/(\.(encoder|decoder))?\.onnx$/, '');
  return { encoder: `${stem}.encoder.onnx`, decoder: `${stem}.decoder.onnx` };
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const ATTENTIONS = ['dot', 'general', 'additive'];

function parseSeq2SeqSpec(text: string): Seq2SeqSpec {
  const spec = parseSpecFields(
    text,
    [
      'sourceVocab',
      'targetVocab',
      'embeddingSize',
      'hiddenSize',
      'encoderHiddenSize',
      'encoderLayers',
      'decoderLayers',
    ],
    ['bidirectional', 'inputFeeding'],
  );
  if (!ATTENTIONS.includes(spec.attention as string)) {
    throw new Error(
      `'attention' must be one of ${ATTENTIONS.join(', ')}, got ${JSON.stringify(spec.attention)}`,
    );
  }
  for (const k of ['bos', 'eos']) {
    const v = spec[k];
    if (
      !Number.isSafeInteger(v) ||
      (v as number) < 0 ||
      (v as number) >= (spec.targetVocab as number)
    ) {
      throw new Error(`'${k}' must be a target token id, got ${JSON.stringify(v)}`);
    }
  }
  return spec as unknown as Seq2SeqSpec;
}

/**
 * Decodes one file of an exported Seq2Seq and checks that it is the `part` it should be, with
 * inputs and outputs that agree with the spec in its metadata. Throws one Error naming `file`.
 */
export function readOnnxSeq2Seq(
  bytes: Uint8Array,
  file: string,
  part: Seq2SeqPart,
  options: LoadOptions = {},
): OnnxSeq2SeqInfo {
  const f = openRnnkitFile(bytes, file, options);
  const kind = f.required('kind');
  const want = `seq2seq-${part}`;
  if (kind !== want) {
    return f.fail(
      (SEQ2SEQ_KINDS as readonly string[]).includes(kind)
        ? `it holds the ${kind.slice(8)} of a sequence-to-sequence model, expected the ${part}`
        : `it holds a '${kind}' model, not the ${part} of a sequence-to-sequence model`,
    );
  }
  let spec: Seq2SeqSpec;
  try {
    spec = parseSeq2SeqSpec(f.required('spec'));
  } catch (error) {
    return f.fail(`its metadata 'spec' is invalid: ${(error as Error).message}`);
  }
  const sourceTokenizer = f.tokenizer('source_tokenizer', spec.sourceVocab);
  const targetTokenizer = f.tokenizer('target_tokenizer', spec.targetVocab);
  f.checkIo(seq2seqIo(spec, part));
  return {
    part,
    spec,
    sourceTokenizer,
    targetTokenizer,
    version: f.meta.get('version') ?? 'unknown',
    opset: f.opset,
    encoderHash: part === 'decoder' ? f.required(ENCODER_HASH) : null,
    weights: weightsOf(f),
  };
}
