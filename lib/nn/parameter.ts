// Parameters and the Module base class. Parameter data and gradients are Float32Arrays the native
// kernels read and write in place (zero-copy). Training runs in a worker thread that updates the
// very arrays the model holds: `share()` moves a parameter's data into a SharedArrayBuffer for it.
// Until then the data is an ordinary ArrayBuffer, which V8 counts as external memory and frees
// once a model is dropped (it let dropped SharedArrayBuffers pile up by the hundred MiB), and which
// release() frees at once: a collection may find a dropped model's tens of MiB much later.
import { releaseArrays } from '../core/native';

/** A float32 buffer over shared memory, zero-filled. */
export function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * Float32Array.BYTES_PER_ELEMENT));
}

export class Parameter {
  private values: Float32Array;
  private gradient: Float32Array | null = null;
  private released = false;

  constructor(
    readonly name: string,
    readonly shape: readonly number[],
  ) {
    this.values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  }

  get data(): Float32Array {
    if (this.released) throw this.releasedError();
    return this.values;
  }

  /** The gradient, allocated at first use: a model that only generates never holds one. */
  get grad(): Float32Array {
    if (this.released) throw this.releasedError();
    this.gradient ??= new Float32Array(this.values.length);
    return this.gradient;
  }

  /**
   * Frees the data and the gradient now rather than at a later garbage collection (data in shared
   * memory, where a training thread may still hold it, is left to the collector). Any use of the
   * parameter afterwards is an error.
   */
  release(): void {
    if (this.released) return;
    releaseArrays(this.gradient ? [this.values, this.gradient] : [this.values]);
    this.released = true;
    this.gradient = null;
  }

  private releasedError(): Error {
    return new Error(`parameter '${this.name}' was released: its model was closed`);
  }

  /**
   * The data over shared memory, copied there the first time, so that a worker thread that
   * adopts it updates this parameter in place.
   */
  share(): Float32Array {
    if (!(this.values.buffer instanceof SharedArrayBuffer)) {
      const shared = sharedFloat32(this.values.length);
      shared.set(this.values);
      this.values = shared;
    }
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
  /** Calls in flight that read the parameters off the main thread (see reading). */
  private readers: Set<Promise<unknown>> | null = null;
  private closed = false;

  /** Every parameter of this module and its children, in a fixed order. */
  abstract parameters(): Parameter[];

  /**
   * Starts a call that reads the parameters off the main thread (a native generation, a training
   * run), so that release() waits for it to end; refused once release() has begun.
   */
  reading<T>(call: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the model was closed'));
    const pending = call();
    const readers = (this.readers ??= new Set());
    readers.add(pending);
    const forget = () => readers.delete(pending);
    pending.then(forget, forget);
    return pending;
  }

  /**
   * Frees every parameter's memory now (see Parameter.release), once the calls started through
   * reading() have ended. Using the module afterwards is an error.
   */
  async release(): Promise<void> {
    this.closed = true;
    if (this.readers) await Promise.allSettled([...this.readers]);
    for (const p of this.parameters()) p.release();
    this.releaseNative();
  }

  /** Frees what the module holds natively besides its parameters (release's last step). */
  protected releaseNative(): void {}

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
