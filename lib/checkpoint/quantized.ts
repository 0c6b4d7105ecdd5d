// Quantized weights in checkpoints. Metadata 'weights' names the type ('int8' or 'bf16'; absent
// for float32). int8: each quantized matrix '<name>' is an I8 tensor [rows, cols] beside
// '<name>.scale', F32 [rows], one scale per row (value = q * scale); bf16: each is a BF16 tensor.
// The other tensors (embedding, biases) stay F32. Loading checks every pairing, dtype, shape and
// scale, naming the tensor at fault, and gives back exactly the weights that were saved.
import {
  dequantizeRows,
  int8Values,
  toBfloat16Bits,
  type InferenceWeights,
  type Quantizable,
  type Quantization,
  type QuantizedMatrix,
} from '../nn/quantize';
import { bfloat16ToFloat32 } from './float16';
import type { Named, WeightsDType } from './format';
import type { Tensor } from './safetensors';

/** The metadata key naming a checkpoint's weight type. */
export const WEIGHTS_KEY = 'weights';

/** The tensors of `matrices` in `quantization`'s type, replacing their float32 ones in `tensors`. */
function addQuantizedTensors(
  tensors: Record<string, Tensor>,
  matrices: QuantizedMatrix[],
  quantization: Quantization,
): void {
  for (const { name, rows, data } of matrices) {
    const shape = [rows, data.length / rows];
    if (quantization.dtype === 'bf16') {
      tensors[name] = { dtype: 'BF16', shape, data: Uint16Array.from(data, toBfloat16Bits) };
      continue;
    }
    const scales = quantization.scales[name];
    tensors[name] = { dtype: 'I8', shape, data: int8Values(data, scales) };
    tensors[`${name}.scale`] = { dtype: 'F32', shape: [rows], data: scales.slice() };
  }
}

/**
 * For a quantized model: its quantized matrices' tensors in place of their float32 ones, and the
 * metadata naming the type. A quantized model is saved in its own type only.
 */
export function addQuantization(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
  model: Quantizable,
  dtype: WeightsDType,
): void {
  const q = model.quantization;
  if (!q) return;
  if (dtype !== 'float32') {
    throw new Error(
      `dtype ${dtype}: a quantized model is saved with its ${q.dtype} weights; leave dtype out`,
    );
  }
  addQuantizedTensors(tensors, model.quantizedMatrices(), q);
  metadata[WEIGHTS_KEY] = q.dtype;
}

/** The weight type a checkpoint's metadata names: null for float32. */
export function storedWeights(
  path: string,
  metadata: Record<string, string>,
): InferenceWeights | null {
  const value = metadata[WEIGHTS_KEY];
  if (value === undefined) return null;
  if (value !== 'int8' && value !== 'bf16') {
    throw new Error(
      `${path}: metadata '${WEIGHTS_KEY}' is ${JSON.stringify(value)}; rnnkit reads 'int8' or 'bf16'`,
    );
  }
  return value;
}

/**
 * Takes a quantized checkpoint's matrices out of `tensors` (with int8's scales), checked against
 * the shapes `model` holds them in, and returns them as the float32 values q * scale (bf16
 * widened) with the scales. A float32 checkpoint (dtype null) holding an I8 tensor or a scale is
 * refused.
 */
export function takeQuantized(
  path: string,
  dtype: InferenceWeights | null,
  tensors: Record<string, Tensor>,
  model: Quantizable,
): { weights: Named; scales: Record<string, Float32Array> } {
  const weights: Named = {};
  const scales: Record<string, Float32Array> = {};
  const where = (name: string) => `${path}: tensor '${name}'`;
  if (dtype === null) {
    for (const [name, t] of Object.entries(tensors)) {
      if (t.dtype === 'I8' || name.endsWith('.scale')) {
        throw new Error(
          `${where(name)} is ${t.dtype === 'I8' ? 'int8' : 'a scale'}, but the checkpoint's ` +
            `metadata '${WEIGHTS_KEY}' does not say 'int8'`,
        );
      }
    }
    return { weights, scales };
  }
  for (const { name, rows, data } of model.quantizedMatrices()) {
    const cols = data.length / rows;
    const shape = [rows, cols];
    const t = tensors[name];
    const want = dtype === 'int8' ? 'I8' : 'BF16';
    if (!t) throw new Error(`${path}: missing tensor '${name}' (${want} [${rows}, ${cols}])`);
    if (t.dtype !== want) {
      throw new Error(
        `${where(name)} has dtype ${t.dtype}; a ${dtype} checkpoint stores it as ${want}`,
      );
    }
    if (t.shape.length !== 2 || t.shape[0] !== rows || t.shape[1] !== cols) {
      throw new Error(
        `${where(name)} has shape [${t.shape.join(', ')}], expected [${rows}, ${cols}]`,
      );
    }
    delete tensors[name];
    if (t.dtype === 'BF16') {
      weights[name] = { shape, data: bfloat16ToFloat32(t.data) };
      continue;
    }
    if (t.dtype !== 'I8') continue;
    const scaleName = `${name}.scale`;
    const s = tensors[scaleName];
    if (!s) {
      throw new Error(
        `${where(name)} is int8 without its scales: the checkpoint has no '${scaleName}' (F32 [${rows}])`,
      );
    }
    if (s.dtype !== 'F32')
      throw new Error(`${where(scaleName)} has dtype ${s.dtype}, expected F32`);
    if (s.shape.length !== 1 || s.shape[0] !== rows) {
      throw new Error(
        `${where(scaleName)} has shape [${s.shape.join(', ')}], expected [${rows}]: ` +
          `one scale per row of '${name}' [${rows}, ${cols}]`,
      );
    }
    const bad = s.data.findIndex((v) => !(v > 0 && Number.isFinite(v)));
    if (bad >= 0) {
      throw new Error(
        `${where(scaleName)} holds ${s.data[bad]} at index [${bad}]; scales must be finite numbers > 0`,
      );
    }
    delete tensors[scaleName];
    scales[name] = s.data.slice();
    weights[name] = { shape, data: dequantizeRows({ q: t.data, scales: scales[name] }) };
  }
  return { weights, scales };
}
