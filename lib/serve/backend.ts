// The step-level backend that continuous batching drives: a model that advances any set of rows by
// some tokens from their own state and gives the logits after the last token of the rows that
// want them. Priming a prompt and generating a token are the same call, so one step can do both
// for different rows. Backends run inside the engine's worker thread; their calls are synchronous
// compute (native) or block it (onnxruntime).
import type { Ragged } from '../decode/options';
import { native, type LmWeights, type NativePackedLm, type StackShape } from '../core/native';
import { StateLayout, type RowStates } from './state';

export interface StepBackend {
  readonly vocabSize: number;
  readonly layout: StateLayout;
  /**
   * Feeds row b the tokens seqs[b] (at least one) starting from row b of `state`; resolves with
   * the state after each row's last token (arrays of its own, `state` is left as it was; the
   * caller gives it to layout.release when done with it) and the logits there of the rows `want`
   * [want.length, V].
   */
  forward(
    seqs: Ragged,
    state: RowStates,
    want: Int32Array,
  ): Promise<{ logits: Float32Array; state: RowStates }>;
}

export function rowLengths(seqs: Ragged): Int32Array {
  return seqs.offsets.subarray(1).map((end, b) => end - seqs.offsets[b]);
}

/** A buffer that grows to the largest size asked of it and lends views of that size. */
class Scratch {
  private buf = new Float32Array(0);

  get(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(n);
    return this.buf.subarray(0, n);
  }
}

/**
 * A LanguageModel's weights run with the native kernels. A step that feeds every row one token
 * (every step once the prompts are primed) runs lmGenerate's kernels over weights packed once for
 * the backend's life; one that feeds some row several prompt tokens runs the embedding, the
 * stack forward over all of them, and the decoder.
 */
export class NativeStepBackend implements StepBackend {
  readonly vocabSize: number;
  readonly layout: StateLayout;
  private readonly packed: NativePackedLm;
  // Scratch reused from call to call, so that a step allocates only what it returns.
  private readonly ws = new Scratch();
  private readonly x = new Scratch();
  private readonly y = new Scratch();
  private readonly last = new Scratch();

  constructor(private readonly w: LmWeights) {
    this.vocabSize = w.V;
    this.layout = new StateLayout(w.L, w.H, w.cell === 'lstm');
    this.packed = new native.PackedLm(w);
  }

  async forward(
    seqs: Ragged,
    state: RowStates,
    want: Int32Array,
  ): Promise<{ logits: Float32Array; state: RowStates }> {
    const { V, E, H, L } = this.w;
    const n = state.n;
    const lengths = rowLengths(seqs);
    const T = lengths.reduce((a, b) => Math.max(a, b), 0);
    if (T === 1) {
      const next = this.layout.zeros(n);
      next.h.set(state.h);
      if (next.c && state.c) next.c.set(state.c);
      const logits = new Float32Array(want.length * V);
      this.packed.step(seqs.tokens.subarray(0, n), next.h, next.c, want, logits);
      return { logits, state: next };
    }
    // Time-major ids, padded with 0: the stack leaves a row's state alone past its length.
    const ids = new Int32Array(T * n);
    for (let b = 0; b < n; b++) {
      for (let t = 0; t < lengths[b]; t++) ids[t * n + b] = seqs.tokens[seqs.offsets[b] + t];
    }
    const x = this.x.get(T * n * E);
    native.embeddingForward({ V, E }, this.w.embedding, ids, x);
    const shape: StackShape = {
      cell: this.w.cell,
      T,
      B: n,
      I: E,
      H,
      L,
      dropout: 0,
      residual: this.w.residual,
      training: false,
      seed: 0,
    };
    const y = this.y.get(T * n * H);
    const next = this.layout.zeros(n);
    const ragged = lengths.some((len) => len !== T);
    native.stackForward(
      shape,
      this.w.stack,
      x,
      ragged ? lengths : null,
      state.h,
      state.c,
      y,
      next.h,
      next.c,
      this.ws.get(native.stackWorkspaceSize(shape)),
    );
    // The decoder runs on the wanted rows' outputs at their last step only.
    const k = want.length;
    const last = this.last.get(k * H);
    want.forEach((b, i) => {
      const at = ((lengths[b] - 1) * n + b) * H;
      last.set(y.subarray(at, at + H), i * H);
    });
    const logits = new Float32Array(k * V);
    if (k > 0) {
      native.linearForward(
        { N: k, I: H, O: V },
        last,
        this.w.decoderWeight,
        this.w.decoderBias,
        logits,
      );
    }
    return { logits, state: next };
  }
}
