// The recurrent state of a set of batch rows, as both step backends hold it: h (and c for LSTM),
// each [L, n, H] like the native stack and the ONNX graphs take it. Rows join and leave the batch
// between steps, so states are concatenated and filtered row-wise, keeping the row order (a
// request's rows stay together and line up with the engine's row list).

export interface RowStates {
  n: number;
  h: Float32Array;
  /** LSTM cell state; null for RNN and GRU. */
  c: Float32Array | null;
}

export class StateLayout {
  constructor(
    readonly L: number,
    readonly H: number,
    readonly lstm: boolean,
  ) {}

  zeros(n: number): RowStates {
    const size = this.L * n * this.H;
    return { n, h: new Float32Array(size), c: this.lstm ? new Float32Array(size) : null };
  }

  /** The rows `rows` (indices into s, in the order given) as a new state. */
  select(s: RowStates, rows: ArrayLike<number>): RowStates {
    const pick = (src: Float32Array) => this.copyRows(src, s.n, rows);
    return { n: rows.length, h: pick(s.h), c: s.c && pick(s.c) };
  }

  /** a's rows, then b's. */
  concat(a: RowStates, b: RowStates): RowStates {
    const join = (x: Float32Array, y: Float32Array) => {
      const { L, H } = this;
      const out = new Float32Array(L * (a.n + b.n) * H);
      for (let l = 0; l < L; l++) {
        out.set(x.subarray(l * a.n * H, (l + 1) * a.n * H), l * (a.n + b.n) * H);
        out.set(y.subarray(l * b.n * H, (l + 1) * b.n * H), (l * (a.n + b.n) + a.n) * H);
      }
      return out;
    };
    return { n: a.n + b.n, h: join(a.h, b.h), c: a.c && b.c && join(a.c, b.c) };
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

  private copyRows(src: Float32Array, n: number, rows: ArrayLike<number>): Float32Array {
    const { L, H } = this;
    const m = rows.length;
    const out = new Float32Array(L * m * H);
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < m; j++) {
        const from = (l * n + rows[j]) * H;
        out.set(src.subarray(from, from + H), (l * m + j) * H);
      }
    }
    return out;
  }
}
