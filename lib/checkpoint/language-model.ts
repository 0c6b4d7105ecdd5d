// Language-model checkpoints: safetensors whose tensor names are those of the equivalent PyTorch
// module (embedding.weight, rnn.weight_ih_l0, ..., decoder.weight, decoder.bias), so PyTorch and
// Python's safetensors read the weights directly; the architecture, the vocabulary and (for
// training checkpoints) the optimizer state and progress travel in the metadata.
import {
  LanguageModelNetwork,
  type LanguageModelConfig,
  type LanguageModelSpec,
} from '../models/language-model';
import { releaseArrays } from '../core/native';
import { tokenizerFromJSON } from '../text';
import {
  checkpointMetadata,
  float32Weights,
  readCheckpoint,
  weightTensors,
  type Named,
  type WeightsDType,
} from './format';
import { addQuantization, storedWeights, takeQuantized } from './quantized';
import { setQuantization } from '../nn/quantize';
import { addTrainingState, metadataJson, readTrainingState, type ResumeState } from './resume';
import { readSafetensors, writeSafetensors, type Tensor } from './safetensors';
import {
  checkFinite,
  checkSpecFields,
  checkUnexpected,
  recordChecksums,
  type LoadOptions,
} from './verify';

export type { LoadOptions };

/** A constructor of the language-model class to load into (the network or a subclass of it). */
export type LanguageModelClass<M extends LanguageModelNetwork> = new (
  config: LanguageModelConfig,
) => M;

export interface CheckpointContents<M extends LanguageModelNetwork = LanguageModelNetwork> {
  model: M;
  /** The training state, when the checkpoint was saved with it. */
  resume: ResumeState | null;
}

/** The model's weights under PyTorch state-dict names (copies). */
export function pytorchStateDict(model: LanguageModelNetwork): Named {
  const out: Named = {
    'embedding.weight': {
      shape: [...model.embedding.weight.shape],
      data: model.embedding.weight.data.slice(),
    },
    ...model.rnn.toPyTorch('rnn.'),
    'decoder.weight': {
      shape: [...model.decoder.weight.shape],
      data: model.decoder.weight.data.slice(),
    },
  };
  if (model.decoder.bias) {
    out['decoder.bias'] = {
      shape: [...model.decoder.bias.shape],
      data: model.decoder.bias.data.slice(),
    };
  }
  return out;
}

/** The PyTorch state-dict names of the model's tensors. */
function pytorchNames(model: LanguageModelNetwork): Set<string> {
  const names = ['embedding.weight', ...model.rnn.pytorchNames('rnn.'), 'decoder.weight'];
  if (model.decoder.bias) names.push('decoder.bias');
  return new Set(names);
}

/**
 * Copies weights from PyTorch state-dict tensors into the model. Checks every name and shape,
 * that there are no other tensors (unless options.strict is false) and that every weight is
 * finite (unless options.allowNonFinite), before changing anything.
 */
export function loadPytorchStateDict(
  model: LanguageModelNetwork,
  tensors: Named,
  source: string,
  options: LoadOptions = {},
): void {
  const names = pytorchNames(model);
  checkUnexpected(source, Object.keys(tensors), names, options);
  checkFinite(
    source,
    Object.fromEntries(Object.entries(tensors).filter(([name]) => names.has(name))),
    options,
  );
  const expect = (name: string, shape: readonly number[]) => {
    const t = tensors[name];
    if (!t) throw new Error(`${source}: missing tensor '${name}' (shape [${shape.join(', ')}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    return t.data;
  };
  const emb = expect('embedding.weight', model.embedding.weight.shape);
  const dec = expect('decoder.weight', model.decoder.weight.shape);
  const bias = model.decoder.bias ? expect('decoder.bias', model.decoder.bias.shape) : null;
  try {
    model.rnn.loadPyTorch(tensors, 'rnn.');
  } catch (error) {
    throw new Error(`${source}: ${(error as Error).message}`);
  }
  model.embedding.weight.data.set(emb);
  if (!model.spec.tieWeights) model.decoder.weight.data.set(dec);
  if (bias && model.decoder.bias) model.decoder.bias.data.set(bias);
}

const GATES = { rnn: 1, gru: 3, lstm: 4 } as const;

/**
 * Refuses, before the model is built, a spec that needs far more weights than the file holds:
 * sizes in a hostile spec could otherwise make the constructor allocate (and initialise)
 * gigabytes. A smaller disagreement is left to the per-tensor checks, which name the tensor, and
 * fields of the wrong type to the constructor's checks.
 */
function checkSpecSize(
  path: string,
  spec: LanguageModelSpec,
  tokenizerSize: number | undefined,
  weights: Record<string, Tensor>,
): void {
  const V = tokenizerSize ?? spec?.vocabSize;
  const { hiddenSize: H, numLayers: L } = spec ?? {};
  const E = spec?.embeddingSize ?? H;
  const G = GATES[spec?.cell ?? 'lstm'];
  if (![V, E, H, L, G].every((n) => Number.isSafeInteger(n) && n > 0)) return;
  const stack = G * H * (E + H + 2) + (L - 1) * G * H * (2 * H + 2);
  const needed = V * E + stack + V * H + V;
  const held = Object.values(weights).reduce((n, t) => n + t.data.length, 0);
  if (needed > 4 * held + (1 << 20)) {
    throw new Error(
      `${path}: its spec needs ${needed} weights but the file holds ${held}: ` +
        'the spec and the tensors disagree',
    );
  }
}

/**
 * Saves the model (and, when given, its training state) atomically: a failed save leaves any
 * previous file at `path` untouched. float16 weights go without training state, which resuming
 * needs at full precision.
 */
export async function saveCheckpoint(
  model: LanguageModelNetwork,
  path: string,
  resume: ResumeState | null = null,
  dtype: WeightsDType = 'float32',
): Promise<void> {
  if (resume && dtype !== 'float32') {
    throw new Error(`a checkpoint with training state stores float32 weights, not ${dtype}`);
  }
  const tensors = weightTensors(pytorchStateDict(model), dtype);
  const metadata = checkpointMetadata('language-model', model.spec);
  addQuantization(tensors, metadata, model, dtype);
  if (model.tokenizer) metadata.tokenizer = JSON.stringify(model.tokenizer.toJSON());
  if (resume) addTrainingState(tensors, metadata, resume);
  recordChecksums(tensors, metadata);
  await writeSafetensors(path, tensors, metadata);
}

/**
 * Loads an rnnkit language-model checkpoint into a new `Model` (the network unless given),
 * checking every tensor's checksum (when recorded), name, shape and dtype, the spec's fields and
 * the weights' values (see LoadOptions).
 */
export async function loadCheckpoint<M extends LanguageModelNetwork = LanguageModelNetwork>(
  path: string,
  Model: LanguageModelClass<M> = LanguageModelNetwork as LanguageModelClass<M>,
  options: LoadOptions = {},
): Promise<CheckpointContents<M>> {
  const file = await readCheckpoint(
    path,
    'language-model',
    'to load a PyTorch state dict use LanguageModel.fromPyTorch',
  );
  const { tensors, metadata } = file;
  const spec = file.spec as LanguageModelSpec;
  const tokenizer =
    metadata.tokenizer === undefined
      ? undefined
      : tokenizerFromJSON(metadataJson(path, 'tokenizer', metadata.tokenizer));
  const { weights, resume } = readTrainingState(path, tensors, metadata);
  const stored = storedWeights(path, metadata);
  checkSpecSize(path, spec, tokenizer?.size, weights);
  let model: M;
  try {
    model = new Model({ ...spec, tokenizer, seed: 0 });
  } catch (error) {
    throw new Error(`${path}: the checkpoint's model spec is invalid: ${(error as Error).message}`);
  }
  checkSpecFields(path, spec, model.spec);
  const rest = { ...weights };
  const quantized = takeQuantized(path, stored, rest, model);
  const named = { ...float32Weights(path, rest), ...quantized.weights };
  loadPytorchStateDict(model, named, path, options);
  if (stored) setQuantization(model, stored, quantized.scales);
  // The model holds copies now. Without training state (whose tensors view the file's bytes),
  // the bytes and the widened copies are freed at once: a loop that loads models would otherwise
  // keep tens of MiB of them until a garbage collection.
  if (!resume) releaseArrays([file.bytes, ...Object.values(named).map((t) => t.data)]);
  return { model, resume };
}

/** Reads a PyTorch state dict saved as safetensors into a new model of the given config. */
export async function loadPytorch<M extends LanguageModelNetwork>(
  path: string,
  config: LanguageModelConfig,
  Model: LanguageModelClass<M>,
  options: LoadOptions = {},
): Promise<M> {
  const { tensors } = await readSafetensors(path);
  const model = new Model({ seed: 0, ...config });
  loadPytorchStateDict(model, float32Weights(path, tensors), path, options);
  return model;
}

/** Writes the model's weights as a PyTorch state dict in safetensors (plain names, no extras). */
export async function savePytorch(model: LanguageModelNetwork, path: string): Promise<void> {
  await writeSafetensors(path, weightTensors(pytorchStateDict(model)), { format: 'pt' });
}
