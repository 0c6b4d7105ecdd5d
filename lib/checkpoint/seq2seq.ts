// Seq2seq checkpoints: safetensors like the language model's (lib/io/checkpoint.ts), kind
// 'seq2seq'. Recurrent stacks are stored under PyTorch's nn.LSTM/GRU names (encoder.weight_ih_l0,
// ...), the attention under its pieces' names (attention.score_weight, attention.combine_weight,
// ...), embeddings and linear layers as weight/bias; the spec and both vocabularies travel in the
// metadata, and a training checkpoint adds the training state both model kinds share
// (resume.ts). Weights are F32, or F16 with dtype 'float16'; F32, F16 and BF16 files load. A
// quantized model's matrices are I8 with their scales, or BF16 (quantized.ts). Loading checks
// every name, shape and dtype before the model is returned.
import { writeSafetensors } from './safetensors';
import {
  checkpointMetadata,
  float32Weights,
  readCheckpoint,
  weightTensors,
  type Named,
  type WeightsDType,
} from './format';
import { addQuantization, storedWeights, takeQuantized } from './quantized';
import { addTrainingState, metadataJson, readTrainingState, type ResumeState } from './resume';
import { Seq2SeqNetwork, type Seq2SeqConfig, type Seq2SeqSpec } from '../models/seq2seq';
import { Attention } from '../nn/attention';
import type { Module } from '../nn/parameter';
import { setQuantization } from '../nn/quantize';
import { RecurrentStack } from '../nn/recurrent';
import { tokenizerFromJSON } from '../text';
import {
  checkFinite,
  checkSpecFields,
  checkUnexpected,
  recordChecksums,
  type LoadOptions,
} from './verify';

/** A module's tensors under `prefix.`: copies for recurrent stacks, views of the rest. */
function moduleTensors(prefix: string, m: Module): Named {
  if (m instanceof RecurrentStack) return m.toPyTorch(`${prefix}.`);
  if (m instanceof Attention) {
    return Object.fromEntries(
      Object.entries(m.tensors()).map(([k, t]) => [`${prefix}.${k}`, t] as const),
    );
  }
  return Object.fromEntries(
    m.parameters().map((p) => [`${prefix}.${p.name}`, { shape: [...p.shape], data: p.data }]),
  );
}

/** Every tensor of the model under its checkpoint name. */
export function seq2seqStateDict(model: Seq2SeqNetwork): Named {
  return Object.assign({}, ...model.modules().map(([prefix, m]) => moduleTensors(prefix, m)));
}

/**
 * Saves weights, spec, vocabularies and (when given) the training state atomically: a failed save
 * leaves `path` untouched. float16 weights go without training state, which resuming needs at
 * full precision.
 */
export async function saveSeq2Seq(
  model: Seq2SeqNetwork,
  path: string,
  resume: ResumeState | null = null,
  dtype: WeightsDType = 'float32',
): Promise<void> {
  if (resume && dtype !== 'float32') {
    throw new Error(`a checkpoint with training state stores float32 weights, not ${dtype}`);
  }
  const copies: Named = Object.fromEntries(
    Object.entries(seq2seqStateDict(model)).map(([k, v]) => [k, { ...v, data: v.data.slice() }]),
  );
  const tensors = weightTensors(copies, dtype);
  const metadata = checkpointMetadata('seq2seq', model.spec);
  addQuantization(tensors, metadata, model, dtype);
  if (model.sourceTokenizer) {
    metadata.source_tokenizer = JSON.stringify(model.sourceTokenizer.toJSON());
  }
  if (model.targetTokenizer) {
    metadata.target_tokenizer = JSON.stringify(model.targetTokenizer.toJSON());
  }
  if (resume) addTrainingState(tensors, metadata, resume);
  recordChecksums(tensors, metadata);
  await writeSafetensors(path, tensors, metadata);
}

/**
 * Loads a model saved by saveSeq2Seq, checking every tensor's checksum (when recorded), name,
 * shape and dtype, the spec's fields, the weights' values (see LoadOptions) and its training
 * state (null when it was saved with weights only).
 */
export async function loadSeq2Seq<M extends Seq2SeqNetwork = Seq2SeqNetwork>(
  path: string,
  Model: new (config: Seq2SeqConfig) => M = Seq2SeqNetwork as new (config: Seq2SeqConfig) => M,
  options: LoadOptions = {},
): Promise<{ model: M; resume: ResumeState | null }> {
  const file = await readCheckpoint(path, 'seq2seq');
  const { metadata } = file;
  const spec = file.spec as Seq2SeqSpec;
  const tokenizer = (key: string) =>
    metadata[key] === undefined
      ? undefined
      : tokenizerFromJSON(metadataJson(path, key, metadata[key]));
  let model: M;
  try {
    model = new Model({
      ...spec,
      sourceTokenizer: tokenizer('source_tokenizer'),
      targetTokenizer: tokenizer('target_tokenizer'),
      seed: 0,
    });
  } catch (error) {
    throw new Error(`${path}: the checkpoint's model spec is invalid: ${(error as Error).message}`);
  }
  checkSpecFields(path, spec, model.spec);
  const { weights, resume } = readTrainingState(path, file.tensors, metadata);
  const stored = storedWeights(path, metadata);
  const rest = { ...weights };
  const quantized = takeQuantized(path, stored, rest, model);
  const all = { ...float32Weights(path, rest), ...quantized.weights };
  const expected = seq2seqStateDict(model);
  for (const [name, want] of Object.entries(expected)) {
    const t = all[name];
    const shape = `[${want.shape.join(', ')}]`;
    if (!t) throw new Error(`${path}: missing tensor '${name}' (shape ${shape})`);
    if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      throw new Error(
        `${path}: tensor '${name}' has shape [${t.shape.join(', ')}], expected ${shape}`,
      );
    }
  }
  checkUnexpected(path, Object.keys(all), new Set(Object.keys(expected)), options);
  const named: Named = Object.fromEntries(Object.keys(expected).map((k) => [k, all[k]]));
  checkFinite(path, named, options);
  for (const [prefix, m] of model.modules()) {
    if (m instanceof RecurrentStack) m.loadPyTorch(named, `${prefix}.`);
    else
      for (const [name, view] of Object.entries(moduleTensors(prefix, m)))
        view.data.set(named[name].data);
  }
  if (stored) setQuantization(model, stored, quantized.scales);
  return { model, resume };
}
