// rnnkit's int8 activation quantization written out for tests that check int8 products against it.

/** rnnkit's activation quantization (native/core/qgemm.h quantize_row), in float32 steps. */
export function quantizeRow(x: Float32Array): { q: Int8Array; scale: number } {
  let max = 0;
  for (const v of x) max = Math.max(max, Math.abs(v));
  const scale = max > 0 ? Math.fround(max / 127) : 1;
  const inverse = Math.fround(1 / scale);
  const q = Int8Array.from(x, (v) => {
    const t = Math.fround(v * inverse);
    // Round half to even, as nearbyint does.
    const r = Math.abs(t % 1) === 0.5 ? 2 * Math.round(t / 2) : Math.round(t);
    return Math.max(-127, Math.min(127, r));
  });
  return { q, scale };
}
