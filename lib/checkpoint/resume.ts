// The training state both model kinds' checkpoints carry so that training can resume: the loop's
// position as JSON in the metadata key 'training', and every optimizer slot as a flat F32 tensor
// named 'optimizer.<slot>.<parameter index>' beside the weights.
import type { Tensor } from './safetensors';

const PREFIX = 'optimizer.';

/** Training progress saved with a checkpoint so that training can resume where it stopped. */
export interface TrainingState {
  optimizer: { kind: 'adam' | 'sgd'; step: number; options: Record<string, number | boolean> };
  step: number;
  epoch: number;
  /** Anything else the trainer needs to resume (batch position, best loss, history). */
  progress: Record<string, unknown>;
}

/** What resuming needs: the training state and the optimizer's slots. */
export interface ResumeState {
  training: TrainingState;
  optimizerTensors: Record<string, Float32Array>;
}

/** A checkpoint metadata value parsed as JSON; the error names the file and the key. */
export function metadataJson(path: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new Error(`${path}: the checkpoint metadata has no '${key}'`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${path}: the checkpoint metadata '${key}' is not valid JSON`);
  }
}

/** Adds the training state to the tensors and metadata of a checkpoint about to be written. */
export function addTrainingState(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
  resume: ResumeState,
): void {
  metadata.training = JSON.stringify(resume.training);
  for (const [k, data] of Object.entries(resume.optimizerTensors)) {
    tensors[`${PREFIX}${k}`] = { dtype: 'F32', shape: [data.length], data };
  }
}

/**
 * Splits a checkpoint's tensors into the weights and the training state (null when it was saved
 * with weights only). Optimizer tensors must be F32.
 */
export function readTrainingState(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
): { weights: Record<string, Tensor>; resume: ResumeState | null } {
  const weights: Record<string, Tensor> = {};
  const optimizerTensors: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (!name.startsWith(PREFIX)) weights[name] = t;
    else if (t.dtype === 'F32') optimizerTensors[name.slice(PREFIX.length)] = t.data;
    else throw new Error(`${path}: tensor '${name}' has dtype ${t.dtype}, expected F32`);
  }
  if (metadata.training === undefined) return { weights, resume: null };
  const training = metadataJson(path, 'training', metadata.training) as TrainingState;
  if (
    typeof training?.step !== 'number' ||
    typeof training.optimizer?.step !== 'number' ||
    typeof training.progress !== 'object' ||
    training.progress === null
  ) {
    throw new Error(`${path}: the checkpoint's training state is malformed`);
  }
  return { weights, resume: { training, optimizerTensors } };
}
