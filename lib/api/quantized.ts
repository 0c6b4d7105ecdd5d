// What quantize and load({ weights }) share between the model kinds users hold: a quantized copy
// of a float32 model, and the model load returns for the weights asked for.
import { checkChoice } from '../core/validate';
import type { Module } from '../nn/parameter';
import {
  INFERENCE_WEIGHTS,
  setQuantization,
  type InferenceWeights,
  type Quantizable,
} from '../nn/quantize';

/**
 * `blank()` (a model of the same spec) given `model`'s weights quantized to `dtype`; `model` itself
 * must hold float32 weights.
 */
export function quantizedCopy<M extends Module & Quantizable>(
  model: M,
  dtype: InferenceWeights,
  blank: () => M,
): M {
  const type = checkChoice('dtype', dtype, INFERENCE_WEIGHTS);
  if (model.quantization) {
    throw new Error(
      `quantize: the model's weights are already ${model.quantization.dtype}; quantize the float32 model instead`,
    );
  }
  const copy = blank();
  const params = copy.parameters();
  model.parameters().forEach((p, i) => params[i].data.set(p.data));
  setQuantization(copy, type);
  return copy;
}

/** load's `weights` option, checked before the file is read: null when absent. */
export function wantedWeights(weights: InferenceWeights | undefined): InferenceWeights | null {
  return weights === undefined ? null : checkChoice('weights', weights, INFERENCE_WEIGHTS);
}

/**
 * The model load returns from `path` for the weights `wanted`: as the checkpoint holds it, or a
 * float32 checkpoint quantized now; a checkpoint quantized to another type is an error.
 */
export function loadedAs<M extends Quantizable & { quantize(dtype: InferenceWeights): M }>(
  path: string,
  model: M,
  wanted: InferenceWeights | null,
): M {
  const held = model.quantization?.dtype;
  if (wanted && held && held !== wanted) {
    throw new Error(`${path}: the checkpoint holds ${held} weights, not ${wanted}`);
  }
  return wanted && !held ? model.quantize(wanted) : model;
}
