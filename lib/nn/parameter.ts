// Parameters and the Module base class. Parameter data, gradients and optimizer state live in
// SharedArrayBuffer-backed Float32Arrays: the native kernels read and write them in place
// (zero-copy), and a training worker thread can update the very arrays the model holds.

/** A float32 buffer over shared memory, zero-filled. */
export function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * Float32Array.BYTES_PER_ELEMENT));
}

export class Parameter {
  private values: Float32Array;
  readonly grad: Float32Array;

  constructor(
    readonly name: string,
    readonly shape: readonly number[],
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    this.values = sharedFloat32(n);
    this.grad = sharedFloat32(n);
  }

  get data(): Float32Array {
    return this.values;
  }

  /**
   * Makes `data` (e.g. another thread's view of the same shared memory) this parameter's storage,
   * so that updates through either are seen by both.
   */
  adopt(data: Float32Array): void {
    if (!(data instanceof Float32Array) || data.length !== this.values.length) {
      throw new RangeError(
        `parameter '${this.name}' needs a Float32Array of length ${this.values.length} to adopt`,
      );
    }
    this.values = data;
  }

  get size(): number {
    return this.data.length;
  }
}

export abstract class Module {
  /** Every parameter of this module and its children, in a fixed order. */
  abstract parameters(): Parameter[];

  /** A one-line description of the module (its options and shapes). */
  abstract describe(): string;

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad.fill(0);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  toString(): string {
    return this.describe();
  }
}

/** Returns `buf` if it holds at least n floats (as a view of exactly n), else a new buffer. */
export function reuse(buf: Float32Array | null, n: number): Float32Array {
  return buf && buf.length >= n ? buf.subarray(0, n) : new Float32Array(n);
}
