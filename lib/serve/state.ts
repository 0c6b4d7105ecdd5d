// The recurrent state of a set of batch rows, as both step backends hold it: h (and c for LSTM),
// each [L, n, H] like the native stack and the ONNX graphs take it. Rows join and leave the batch
// between steps, so states are concatenated and filtered row-wise, keeping the row order (a
// request's rows stay together and line up with the engine's row list).
//
// A batch replaces its state at every step, so the arrays come from a small pool: views of
// buffers sized for the largest batch so far, handed back by `release`. Allocating them afresh
// churned the worker's memory by hundreds of KiB a step, and its RSS crept up for thousands of
// requests before it levelled off.

export interface RowStates {
  n: number;
  h: Float32Array;
  /** LSTM cell state; null for RNN and GRU. */
  c: Float32Array | null;
}

/** Spare buffers kept for reuse; a step needs a handful at most. */
const MAX_SPARE = 8;

export class StateLayout {
  private readonly spare: Float32Array[] = [];
  /** The pool's buffers (and only those) may be released into it. */
  private readonly owned = new WeakSet<ArrayBufferLike>();
  private largest = 0;

  constructor(
    readonly L: number,
    readonly H: number,
    readonly lstm: boolean,
  ) {}

  zeros(n: number): RowStates {
    const take = () => this.take(n).fill(0);
    return { n, h: take(), c: this.lstm ? take() : null };
  }

  /** Gives the arrays of a state nobody reads any more back to the pool. */
  release(s: RowStates): void {
    for (const a of [s.h, s.c]) {
      if (!a || !this.owned.has(a.buffer) || this.spare.length >= MAX_SPARE) continue;
      const whole = new Float32Array(a.buffer);
      // Buffers outgrown by the batch are let go rather than kept for nothing.
      if (whole.length < this.L * this.largest * this.H) continue;
      if (!this.spare.some((b) => b.buffer === whole.buffer)) this.spare.push(whole);
    }
  }

  /** The rows `rows` (indices into s, in the order given) as a new state. */
  select(s: RowStates, rows: ArrayLike<number>): RowStates {
    const { L, H } = this;
    const m = rows.length;
    const pick = (src: Float32Array) => {
      const out = this.take(m);
      for (let l = 0; l < L; l++) {
        for (let j = 0; j < m; j++) {
          const from = (l * s.n + rows[j]) * H;
          out.set(src.subarray(from, from + H), (l * m + j) * H);
        }
      }
      return out;
    };
    return { n: m, h: pick(s.h), c: s.c && pick(s.c) };
  }

  /** a's rows, then b's. */
  concat(a: RowStates, b: RowStates): RowStates {
    const { L, H } = this;
    const n = a.n + b.n;
    const join = (x: Float32Array, y: Float32Array) => {
      const out = this.take(n);
      for (let l = 0; l < L; l++) {
        out.set(x.subarray(l * a.n * H, (l + 1) * a.n * H), l * n * H);
        out.set(y.subarray(l * b.n * H, (l + 1) * b.n * H), (l * n + a.n) * H);
      }
      return out;
    };
    return { n, h: join(a.h, b.h), c: a.c && b.c && join(a.c, b.c) };
  }

  /** Writes the rows of `part` into rows `rows` of `into` (the inverse of select). */
  assign(into: RowStates, rows: ArrayLike<number>, part: RowStates): void {
    const put = (dst: Float32Array, src: Float32Array) => {
      const { L, H } = this;
      for (let l = 0; l < L; l++) {
        for (let j = 0; j < rows.length; j++) {
          const from = (l * part.n + j) * H;
          dst.set(src.subarray(from, from + H), (l * into.n + rows[j]) * H);
        }
      }
    };
    put(into.h, part.h);
    if (into.c && part.c) put(into.c, part.c);
  }

  /** A [L, n, H] view of a pooled buffer; its contents are whatever they were. */
  private take(n: number): Float32Array {
    const size = this.L * n * this.H;
    const i = this.spare.findIndex((b) => b.length >= size);
    if (i >= 0) return this.spare.splice(i, 1)[0].subarray(0, size);
    this.largest = Math.max(this.largest, n);
    const buf = new Float32Array(this.L * this.largest * this.H);
    this.owned.add(buf.buffer);
    return buf.subarray(0, size);
  }
}
