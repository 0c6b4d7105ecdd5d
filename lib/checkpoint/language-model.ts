// Language-model checkpoints: safetensors whose tensor names are those of the equivalent PyTorch
// module (embedding.weight, rnn.weight_ih_l0, ..., decoder.weight, decoder.bias), so PyTorch and
// Python's safetensors read the weights directly; the architecture, the vocabulary and (for
// training checkpoints) the optimizer state and progress travel in the metadata.
import { LanguageModel, type LanguageModelSpec } from '../models/language-model';
import { tokenizerFromJSON } from '../text';
import { float32ToFloat16 } from './float16';
import { float32Data, readSafetensors, writeSafetensors, type Tensor } from './safetensors';
import { addTrainingState, metadataJson, readTrainingState, type TrainingState } from './resume';

export type { TrainingState };

const FORMAT = 'rnnkit';
const VERSION = '0.1.0';

type Named = Record<string, { shape: readonly number[]; data: Float32Array }>;

export interface CheckpointContents {
  model: LanguageModel;
  training: TrainingState | null;
  optimizerTensors: Record<string, Float32Array>;
}

/** The model's weights under PyTorch state-dict names (copies). */
export function pytorchStateDict(model: LanguageModel): Named {
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

/**
 * Copies weights from PyTorch state-dict tensors into the model. Checks every name and shape
 * before changing anything.
 */
export function loadPytorchStateDict(model: LanguageModel, tensors: Named, source: string): void {
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

/** How weights are stored: float32 as trained, or float16 for half the file. */
export type WeightsDType = 'float32' | 'float16';

function tensorsOf(named: Named, dtype: WeightsDType = 'float32'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(named)) {
    out[k] =
      dtype === 'float16'
        ? { dtype: 'F16', shape: v.shape, data: float32ToFloat16(v.data) }
        : { dtype: 'F32', shape: v.shape, data: v.data };
  }
  return out;
}

/** The weight tensors of a file as float32 (F16 and BF16 widened). */
function weightsOf(path: string, tensors: Record<string, Tensor>): Named {
  const weights: Named = {};
  for (const [name, t] of Object.entries(tensors)) {
    weights[name] = { shape: t.shape, data: float32Data(t, `${path}: tensor '${name}'`) };
  }
  return weights;
}

/**
 * Saves the model (and, when given, the training state and optimizer tensors) atomically: a failed
 * save leaves any previous file at `path` untouched. float16 weights go without training state,
 * which resuming needs at full precision.
 */
export async function saveCheckpoint(
  model: LanguageModel,
  path: string,
  training?: { state: TrainingState; optimizerTensors: Record<string, Float32Array> },
  dtype: WeightsDType = 'float32',
): Promise<void> {
  if (training && dtype !== 'float32') {
    throw new Error(`a checkpoint with training state stores float32 weights, not ${dtype}`);
  }
  const tensors = tensorsOf(pytorchStateDict(model), dtype);
  const metadata: Record<string, string> = {
    format: FORMAT,
    kind: 'language-model',
    version: VERSION,
    spec: JSON.stringify(model.spec),
  };
  if (model.tokenizer) metadata.tokenizer = JSON.stringify(model.tokenizer.toJSON());
  if (training) {
    addTrainingState(tensors, metadata, {
      training: training.state,
      optimizerTensors: training.optimizerTensors,
    });
  }
  await writeSafetensors(path, tensors, metadata);
}

/** Loads an rnnkit language-model checkpoint, checking every tensor's name, shape and dtype. */
export async function loadCheckpoint(path: string): Promise<CheckpointContents> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== FORMAT) {
    throw new Error(
      `${path}: not an rnnkit checkpoint (metadata 'format' is ${metadata.format === undefined ? 'missing' : `'${metadata.format}'`}); ` +
        'to load a PyTorch state dict use LanguageModel.fromPyTorch',
    );
  }
  if (metadata.kind !== 'language-model') {
    throw new Error(`${path}: this checkpoint holds a '${metadata.kind}', not a language model`);
  }
  const spec = metadataJson(path, 'spec', metadata.spec) as LanguageModelSpec;
  const tokenizer =
    metadata.tokenizer === undefined
      ? undefined
      : tokenizerFromJSON(metadataJson(path, 'tokenizer', metadata.tokenizer));
  let model: LanguageModel;
  try {
    model = new LanguageModel({ ...spec, tokenizer, seed: 0 });
  } catch (error) {
    throw new Error(`${path}: the checkpoint's model spec is invalid: ${(error as Error).message}`);
  }
  const { weights, resume } = readTrainingState(path, tensors, metadata);
  loadPytorchStateDict(model, weightsOf(path, weights), path);
  return {
    model,
    training: resume?.training ?? null,
    optimizerTensors: resume?.optimizerTensors ?? {},
  };
}

/** Reads a PyTorch state dict saved as safetensors into a new model of the given config. */
export async function loadPytorch(
  path: string,
  config: ConstructorParameters<typeof LanguageModel>[0],
): Promise<LanguageModel> {
  const { tensors } = await readSafetensors(path);
  const model = new LanguageModel({ seed: 0, ...config });
  loadPytorchStateDict(model, weightsOf(path, tensors), path);
  return model;
}

/** Writes the model's weights as a PyTorch state dict in safetensors (plain names, no extras). */
export async function savePytorch(model: LanguageModel, path: string): Promise<void> {
  await writeSafetensors(path, tensorsOf(pytorchStateDict(model)), { format: 'pt' });
}
