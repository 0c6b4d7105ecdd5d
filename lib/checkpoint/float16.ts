/**
 * IEEE 754 half precision (binary16) and bfloat16 as raw 16-bit patterns, for safetensors files
 * that store weights in 16 bits. Computation stays in float32: 16-bit tensors are widened when
 * read and narrowed (rounding to nearest, ties to even) only when written.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bit pattern nearest to `value` (ties to even); overflow gives ±Infinity. */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112; // rebias from 127 to 15
  if (e >= 0x1f) return sign | 0x7c00;
  // Normal results keep 10 of the 23 mantissa bits; subnormal ones (e <= 0) shift the mantissa,
  // with its implicit leading 1, further right. Below half the smallest subnormal: zero.
  const shift = e > 0 ? 13 : 14 - e;
  if (shift > 24) return sign;
  const m = e > 0 ? mantissa : mantissa | 0x800000;
  let bits = (e > 0 ? e << 10 : 0) | (m >>> shift);
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  // A carry out of the mantissa steps the exponent up, which is the right rounding (to Infinity
  // at the top).
  if (rest > half || (rest === half && (bits & 1) === 1)) bits++;
  return sign | bits;
}

let halfTable: Float32Array | null = null;

/** All 65,536 binary16 values, built on first use. */
function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) table[h] = sign * m * 2 ** -24;
    else if (e === 0x1f) table[h] = m ? NaN : sign * Infinity;
    else table[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = table;
  return table;
}

/** Narrows float32 values to binary16 bit patterns. */
export function float32ToFloat16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = toFloat16Bits(data[i]);
  return out;
}

/** Widens binary16 bit patterns to float32 (exactly: every binary16 value is a float32). */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** Widens bfloat16 bit patterns (the top half of a float32) to float32. */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const wide = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) wide[i] = bits[i] << 16;
  return out;
}
