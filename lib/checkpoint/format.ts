// What every rnnkit checkpoint shares, whatever model it holds: safetensors with metadata
// 'format' (rnnkit), 'kind' (the model family), 'version' (the package's) and 'spec' (the
// architecture as JSON); weights stored as F32, or F16 for half the file, and read back from
// F32, F16 or BF16 as float32.
import { FORMAT, VERSION } from '../core/constants';
import { float32ToFloat16 } from './float16';
import { metadataJson, type ResumeState } from './resume';
import { float32Data, parseSafetensors, readBytes, type Tensor } from './safetensors';
import { verifyFileChecksums } from './verify';

/** Tensors by name, as float32. */
export type Named = Record<string, { shape: readonly number[]; data: Float32Array }>;

/** How weights are stored: float32 as trained, or float16 for half the file. */
export type WeightsDType = 'float32' | 'float16';

/** The model families a checkpoint can hold, as its metadata 'kind' names them. */
export type CheckpointKind = 'language-model' | 'seq2seq';

const KIND_NAMES: Record<CheckpointKind, string> = {
  'language-model': 'a language model',
  seq2seq: 'a sequence-to-sequence model',
};

/** The options of a model's `save`. */
export interface SaveOptions {
  /** Leave the training state out (smaller; cannot be resumed). */
  weightsOnly?: boolean;
  /** 'float16' halves the weights and implies weightsOnly. */
  dtype?: WeightsDType;
}

/** What a save writes: the checked dtype, and the training state unless left out. */
export function savePlan(
  options: SaveOptions,
  resume: ResumeState | null,
): { dtype: WeightsDType; resume: ResumeState | null } {
  const dtype = options.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new TypeError(`dtype must be 'float32' or 'float16', got ${JSON.stringify(dtype)}`);
  }
  return { dtype, resume: options.weightsOnly || dtype !== 'float32' ? null : resume };
}

/** The tensors to write for `named` weights in `dtype` (float32 ones as they are). */
export function weightTensors(
  named: Named,
  dtype: WeightsDType = 'float32',
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(named)) {
    out[k] =
      dtype === 'float16'
        ? { dtype: 'F16', shape: v.shape, data: float32ToFloat16(v.data) }
        : { dtype: 'F32', shape: v.shape, data: v.data };
  }
  return out;
}

/** A file's weight tensors as float32 (F16 and BF16 widened); other dtypes are an error. */
export function float32Weights(path: string, tensors: Record<string, Tensor>): Named {
  const weights: Named = {};
  for (const [name, t] of Object.entries(tensors)) {
    weights[name] = { shape: t.shape, data: float32Data(t, `${path}: tensor '${name}'`) };
  }
  return weights;
}

/** The metadata of a checkpoint of `kind` holding a model of `spec`. */
export function checkpointMetadata(kind: CheckpointKind, spec: object): Record<string, string> {
  return { format: FORMAT, kind, version: VERSION, spec: JSON.stringify(spec) };
}

/**
 * Reads an rnnkit checkpoint of `kind`: verifies its checksums (where it records them), rejects
 * other files (naming what they hold) and returns its tensors, metadata and spec. `hint` ends the error for a file without rnnkit metadata.
 */
export async function readCheckpoint(
  path: string,
  kind: CheckpointKind,
  hint = '',
): Promise<{
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
  spec: unknown;
  /** The file's bytes, which the tensors view. */
  bytes: Uint8Array;
}> {
  const bytes = await readBytes(path);
  const { tensors, metadata } = parseSafetensors(bytes, path);
  // First: a corrupted file is named as such, whatever its damaged metadata says.
  verifyFileChecksums(path, { tensors, metadata });
  if (metadata.format !== FORMAT) {
    const format = metadata.format === undefined ? 'missing' : `'${metadata.format}'`;
    throw new Error(
      `${path}: not an rnnkit checkpoint (metadata 'format' is ${format})${hint ? `; ${hint}` : ''}`,
    );
  }
  if (metadata.kind !== kind) {
    throw new Error(`${path}: this checkpoint holds a '${metadata.kind}', not ${KIND_NAMES[kind]}`);
  }
  return { tensors, metadata, spec: metadataJson(path, 'spec', metadata.spec), bytes };
}
