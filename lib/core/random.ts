// Seeded random numbers for initialisation and sampling in TypeScript (SplitMix64 over BigInt-free
// 32-bit halves would be faster, but initialisation runs once per model: clarity wins here).

/** A seeded generator: uniform floats in [0, 1), normals, integers. */
export class Random {
  private state: bigint;

  constructor(seed: number = Date.now()) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.state = BigInt.asUintN(64, BigInt(Math.floor(seed)));
  }

  /** Where the stream stands, as a decimal string (JSON-safe); `Random.resume` continues it. */
  save(): string {
    return this.state.toString();
  }

  /** A generator that continues the stream `save()` described. */
  static resume(saved: string): Random {
    if (typeof saved !== 'string' || !/^\d{1,20}$/.test(saved) || BigInt(saved) >= 2n ** 64n) {
      throw new RangeError(
        `a saved random state must be a 64-bit decimal string, got ${JSON.stringify(saved)}`,
      );
    }
    const r = new Random(0);
    r.state = BigInt(saved);
    return r;
  }

  /** 53 random bits as a float in [0, 1). */
  uniform(): number {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    z = z ^ (z >> 31n);
    return Number(z >> 11n) / 9007199254740992;
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
