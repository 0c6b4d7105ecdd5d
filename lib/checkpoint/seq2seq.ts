// Seq2seq checkpoints: safetensors like the language model's (lib/io/checkpoint.ts), kind
// 'seq2seq'. Recurrent stacks are stored under PyTorch's nn.LSTM/GRU names (encoder.weight_ih_l0,
// ...), the attention under its pieces' names (attention.score_weight, attention.combine_weight,
// ...), embeddings and linear layers as weight/bias; the spec and both vocabularies travel in the
// metadata, and a training checkpoint adds the training state both model kinds share
// (lib/io/training.ts). Loading checks every name, shape and dtype before the model is returned.
import { writeSafetensors, readSafetensors, type Tensor } from './safetensors';
import { addTrainingState, metadataJson, readTrainingState, type ResumeState } from './resume';
import { Seq2Seq, type Seq2SeqSpec } from '../models/seq2seq';
import { Attention } from '../nn/attention';
import type { Module } from '../nn/parameter';
import { RecurrentStack } from '../nn/recurrent';
import { tokenizerFromJSON } from '../text';

const FORMAT = 'rnnkit';
const VERSION = '0.1.0';

type Named = Record<string, { shape: readonly number[]; data: Float32Array }>;

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
export function seq2seqStateDict(model: Seq2Seq): Named {
  return Object.assign({}, ...model.modules().map(([prefix, m]) => moduleTensors(prefix, m)));
}

/**
 * Saves weights, spec, vocabularies and (when given) the training state atomically: a failed save
 * leaves `path` untouched.
 */
export async function saveSeq2Seq(
  model: Seq2Seq,
  path: string,
  resume: ResumeState | null = null,
): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(seq2seqStateDict(model))) {
    tensors[k] = { dtype: 'F32', shape: v.shape, data: v.data.slice() };
  }
  const metadata: Record<string, string> = {
    format: FORMAT,
    kind: 'seq2seq',
    version: VERSION,
    spec: JSON.stringify(model.spec),
  };
  if (model.sourceTokenizer) {
    metadata.source_tokenizer = JSON.stringify(model.sourceTokenizer.toJSON());
  }
  if (model.targetTokenizer) {
    metadata.target_tokenizer = JSON.stringify(model.targetTokenizer.toJSON());
  }
  if (resume) addTrainingState(tensors, metadata, resume);
  await writeSafetensors(path, tensors, metadata);
}

/**
 * Loads a model saved by saveSeq2Seq, checking every tensor's name, shape and dtype, and its
 * training state (null when it was saved with weights only).
 */
export async function loadSeq2Seq(
  path: string,
): Promise<{ model: Seq2Seq; resume: ResumeState | null }> {
  const file = await readSafetensors(path);
  const { metadata } = file;
  if (metadata.format !== FORMAT) {
    throw new Error(`${path}: not an rnnkit checkpoint (no 'format: rnnkit' in its metadata)`);
  }
  if (metadata.kind !== 'seq2seq') {
    throw new Error(
      `${path}: this checkpoint holds a '${metadata.kind}', not a sequence-to-sequence model`,
    );
  }
  const spec = metadataJson(path, 'spec', metadata.spec) as Seq2SeqSpec;
  const tokenizer = (key: string) =>
    metadata[key] === undefined
      ? undefined
      : tokenizerFromJSON(metadataJson(path, key, metadata[key]));
  let model: Seq2Seq;
  try {
    model = new Seq2Seq({
      ...spec,
      sourceTokenizer: tokenizer('source_tokenizer'),
      targetTokenizer: tokenizer('target_tokenizer'),
      seed: 0,
    });
  } catch (error) {
    throw new Error(`${path}: the checkpoint's model spec is invalid: ${(error as Error).message}`);
  }
  const { weights: tensors, resume } = readTrainingState(path, file.tensors, metadata);
  const expected = seq2seqStateDict(model);
  for (const [name, want] of Object.entries(expected)) {
    const t = tensors[name];
    const shape = `[${want.shape.join(', ')}]`;
    if (!t) throw new Error(`${path}: missing tensor '${name}' (shape ${shape})`);
    if (t.dtype !== 'F32') {
      throw new Error(`${path}: tensor '${name}' has dtype ${t.dtype}, expected F32`);
    }
    if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      throw new Error(
        `${path}: tensor '${name}' has shape [${t.shape.join(', ')}], expected ${shape}`,
      );
    }
  }
  const extra = Object.keys(tensors).filter((k) => !(k in expected));
  if (extra.length > 0) {
    throw new Error(`${path}: unexpected tensor '${extra[0]}' for this model's spec`);
  }
  const named: Named = Object.fromEntries(
    Object.entries(tensors).map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]),
  );
  for (const [prefix, m] of model.modules()) {
    if (m instanceof RecurrentStack) m.loadPyTorch(named, `${prefix}.`);
    else
      for (const [name, view] of Object.entries(moduleTensors(prefix, m)))
        view.data.set(named[name].data);
  }
  return { model, resume };
}
