/**
 * Weights for inference in fewer bytes: int8 with one float32 scale per row (symmetric: the row's
 * largest magnitude maps to 127), or bfloat16. A quantized model keeps its weights as float32
 * values that are exactly those (q * scale, or the bfloat16 value), so that every float32 path
 * reads the quantized weights, and the native products pack them back to int8 or bfloat16 exactly
 * (native/core/qgemm.h).
 */

/** The inference weight types: `model.quantize(...)`, `load(path, { weights })`. */
export const INFERENCE_WEIGHTS = ['int8', 'bf16'] as const;
export type InferenceWeights = (typeof INFERENCE_WEIGHTS)[number];

/**
 * A quantized model's weights: their type, and for int8 the scale of every row of each quantized
 * matrix, by its checkpoint name.
 */
export interface Quantization {
  dtype: InferenceWeights;
  scales: Record<string, Float32Array>;
}

/** A matrix a model holds quantized: a view [rows, cols] of its parameter, by checkpoint name. */
export interface QuantizedMatrix {
  name: string;
  rows: number;
  data: Float32Array;
}

/** A network whose weights can be quantized for inference (language model, seq2seq). */
export interface Quantizable {
  /** null: float32, as trained. */
  quantization: Quantization | null;
  /** The matrices quantization rounds; embeddings and biases stay float32. */
  quantizedMatrices(): QuantizedMatrix[];
}

/** Refuses to train a quantized model, naming the way that works. */
export function checkTrainable(model: Quantizable): void {
  if (!model.quantization) return;
  throw new Error(
    `fit: this model's weights are ${model.quantization.dtype}, quantized for inference, and do ` +
      'not train; train the float32 model and quantize it afterwards',
  );
}

/**
 * Rounds a float32 model's quantized matrices to `dtype` in place (int8: per row, as quantizeRows
 * does) and records it, unless `scales` (int8) gives the scales of weights that already hold
 * q * scale, as a quantized checkpoint's do.
 */
export function setQuantization(
  model: Quantizable,
  dtype: InferenceWeights,
  scales?: Record<string, Float32Array>,
): void {
  if (model.quantization) {
    throw new Error(
      `the model's weights are already ${model.quantization.dtype}: quantize the float32 model instead`,
    );
  }
  const kept: Record<string, Float32Array> = {};
  for (const m of model.quantizedMatrices()) {
    if (dtype === 'bf16') {
      roundToBfloat16(m.data);
    } else if (scales) {
      kept[m.name] = scales[m.name];
    } else {
      const rows = quantizeRows(m.data, m.rows);
      m.data.set(dequantizeRows(rows));
      kept[m.name] = rows.scales;
    }
  }
  model.quantization = { dtype, scales: kept };
}

/** int8 scales of the matrices one after another, as the native products take them. */
export function joinedScales(
  quantization: Quantization,
  matrices: readonly QuantizedMatrix[],
): Float32Array {
  const parts = matrices.map((m) => quantization.scales[m.name]);
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** int8 rows: q [rows, cols] and one scale per row. */
export interface Int8Rows {
  q: Int8Array;
  scales: Float32Array;
}

/**
 * Quantizes each row of data [rows, cols]: scale = max |row| / 127 (1 for a row of zeros, which
 * any scale represents), q = round(value / scale) in [-127, 127].
 */
export function quantizeRows(data: Float32Array, rows: number): Int8Rows {
  const cols = data.length / rows;
  const q = new Int8Array(data.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * cols, (r + 1) * cols);
    let max = 0;
    for (const v of row) max = Math.max(max, Math.abs(v));
    const scale = max > 0 ? Math.fround(max / 127) : 1;
    scales[r] = scale;
    for (let k = 0; k < cols; k++) {
      q[r * cols + k] = Math.max(-127, Math.min(127, Math.round(row[k] / scale)));
    }
  }
  return { q, scales };
}

/**
 * The int8 values q of rows [rows, cols] that hold q * scale (a quantized model's weights), one
 * scale per row.
 */
export function int8Values(data: Float32Array, scales: Float32Array): Int8Array {
  const cols = data.length / scales.length;
  const q = new Int8Array(data.length);
  for (let i = 0; i < q.length; i++) q[i] = Math.round(data[i] / scales[Math.floor(i / cols)]);
  return q;
}

/** The float32 values q * scale of int8 rows [rows, cols]. */
export function dequantizeRows({ q, scales }: Int8Rows): Float32Array {
  const cols = q.length / scales.length;
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = q[i] * scales[Math.floor(i / cols)];
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bfloat16 bit pattern nearest to `value` (ties to even); NaN stays NaN. */
export function toBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Rounds every value to the nearest bfloat16, in place. */
export function roundToBfloat16(data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    u32[0] = toBfloat16Bits(data[i]) << 16;
    data[i] = f32[0];
  }
}

/**
 * A quantized model's native packed form, made on first use and held for the model's life: its
 * weights never change once quantized (training is refused), so its generations and searches
 * need not pack them again each call. A float32 model has none; its weights change as it trains,
 * and each native call packs them afresh.
 */
export class PackedOnce<T extends { release(): void }> {
  private made: { of: Quantization; value: T } | null = null;

  /** The packed form of the model quantized as `quantization`; null for a float32 model. */
  get(quantization: Quantization | null, pack: () => T): T | null {
    if (!quantization) return null;
    if (this.made?.of !== quantization) {
      this.made?.value.release();
      this.made = { of: quantization, value: pack() };
    }
    return this.made.value;
  }

  /** Frees the packed form now (the model is being released). */
  release(): void {
    this.made?.value.release();
    this.made = null;
  }
}
