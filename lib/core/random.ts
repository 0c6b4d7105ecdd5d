// Seeded random numbers for initialisation and sampling in TypeScript: SplitMix64, computed on
// two 32-bit halves (BigInt arithmetic made initialising a 3-million-weight model take 0.8 s).

/** The high 32 bits of the 64-bit product of two uint32s. */
function mulHigh(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** x ^ (x >> k) * m (mod 2^64) on halves, 0 < k < 32: writes hi and lo of the result to out. */
function mixStep(hi: number, lo: number, k: number, mHi: number, mLo: number, out: Uint32Array) {
  const xLo = (lo ^ ((lo >>> k) | (hi << (32 - k)))) >>> 0;
  const xHi = (hi ^ (hi >>> k)) >>> 0;
  out[1] = Math.imul(xLo, mLo) >>> 0;
  out[0] = (mulHigh(xLo, mLo) + Math.imul(xHi, mLo) + Math.imul(xLo, mHi)) >>> 0;
}

const MASK64 = (1n << 64n) - 1n;

/** A seeded generator: uniform floats in [0, 1), normals, integers. */
export class Random {
  // The 64-bit state as two halves.
  private hi = 0;
  private lo = 0;
  private readonly z = new Uint32Array(2);

  constructor(seed: number = Date.now()) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.set(BigInt(Math.floor(seed)) & MASK64);
  }

  private set(state: bigint): void {
    this.hi = Number(state >> 32n);
    this.lo = Number(state & 0xffffffffn);
  }

  /** Where the stream stands, as a decimal string (JSON-safe); `Random.resume` continues it. */
  save(): string {
    return ((BigInt(this.hi) << 32n) | BigInt(this.lo)).toString();
  }

  /** A generator that continues the stream `save()` described. */
  static resume(saved: string): Random {
    if (typeof saved !== 'string' || !/^\d{1,20}$/.test(saved) || BigInt(saved) >= 2n ** 64n) {
      throw new RangeError(
        `a saved random state must be a 64-bit decimal string, got ${JSON.stringify(saved)}`,
      );
    }
    const r = new Random(0);
    r.set(BigInt(saved));
    return r;
  }

  /** 53 random bits as a float in [0, 1). */
  uniform(): number {
    // state += 0x9e3779b97f4a7c15
    const lo = this.lo + 0x7f4a7c15;
    this.lo = lo >>> 0;
    this.hi = (this.hi + 0x9e3779b9 + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    const z = this.z;
    mixStep(this.hi, this.lo, 30, 0xbf58476d, 0x1ce4e5b9, z);
    mixStep(z[0], z[1], 27, 0x94d049bb, 0x133111eb, z);
    const hi = (z[0] ^ (z[0] >>> 31)) >>> 0;
    const low = (z[1] ^ ((z[1] >>> 31) | (z[0] << 1))) >>> 0;
    // (z >> 11) / 2^53
    return (hi * 2097152 + (low >>> 11)) / 9007199254740992;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Fills `a` with uniform values in [lo, hi). */
  fillUniform(a: Float32Array, lo: number, hi: number): void {
    for (let i = 0; i < a.length; i++) a[i] = lo + (hi - lo) * this.uniform();
  }

  /** Fills `a` with normal values of the given standard deviation. */
  fillNormal(a: Float32Array, std: number): void {
    for (let i = 0; i < a.length; i++) a[i] = std * this.normal();
  }
}
