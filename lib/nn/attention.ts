import { native, type AttentionKind, type AttentionShape } from '../core/native';
import { Random } from '../core/random';
import { checkChoice, checkInt } from '../core/validate';
import { Module, Parameter, reuse } from './parameter';

export type { AttentionKind };

export interface AttentionOptions {
  kind: AttentionKind;
  /** Decoder hidden size: the size of the queries and of the attentional output. */
  querySize: number;
  /** Encoder state size (must equal querySize for 'dot'). */
  keySize: number;
  /** Additive attention's hidden size (default querySize). */
  attentionSize?: number;
  rng?: Random;
}

export interface AttentionForwardOptions {
  /** Decoder steps T, source positions S and batch rows B. */
  steps: number;
  sourceSteps: number;
  batch: number;
  /** Valid source positions of each row (1..S); the rest get no attention. */
  lengths: Int32Array;
}

export const ATTENTION_KINDS: readonly AttentionKind[] = ['dot', 'general', 'additive'];

/**
 * Luong attention over encoder states: for decoder outputs q [T, B, Hd] and encoder states
 * enc [S, B, He] (time-major), weights a = masked softmax(score(q, enc)), context c = a . enc and
 * the attentional state tanh(W_c [c; q]) [T, B, Hd], all T steps in one native call. Scores: 'dot'
 * q.s, 'general' q.(W_a s), 'additive' v.tanh(W_q q + W_k s). One flat parameter buffer, laid out
 * as native/core/attention.h says; `tensors()` names its pieces.
 */
export class Attention extends Module {
  readonly kind: AttentionKind;
  readonly querySize: number;
  readonly keySize: number;
  readonly attentionSize: number;
  readonly weights: Parameter;
  private shape: AttentionShape | null = null;
  private q: Float32Array | null = null;
  private enc: Float32Array | null = null;
  private lengths: Int32Array | null = null;
  private ws: Float32Array | null = null;
  private align: Float32Array | null = null;
  private out: Float32Array | null = null;
  private dout: Float32Array | null = null;
  private dq: Float32Array | null = null;
  private denc: Float32Array | null = null;

  constructor(options: AttentionOptions) {
    super();
    this.kind = checkChoice('attention', options.kind, ATTENTION_KINDS);
    this.querySize = checkInt('querySize', options.querySize, 1);
    this.keySize = checkInt('keySize', options.keySize, 1);
    this.attentionSize = checkInt('attentionSize', options.attentionSize ?? this.querySize, 1);
    if (this.kind === 'dot' && this.keySize !== this.querySize) {
      throw new RangeError(
        `dot attention needs the encoder state size (${this.keySize}) to equal the decoder's ` +
          `hidden size (${this.querySize}); use 'general' or 'additive' attention`,
      );
    }
    this.weights = new Parameter('weights', [native.attentionParamCount(this.makeShape(1, 1, 1))]);
    const rng = options.rng ?? new Random();
    // Every piece is a linear map; uniform(+-1/sqrt(fan-in)) like nn.Linear, per piece.
    for (const t of Object.values(this.tensors())) {
      const bound = 1 / Math.sqrt(t.shape[t.shape.length - 1]);
      rng.fillUniform(t.data, -bound, bound);
    }
  }

  parameters(): Parameter[] {
    return [this.weights];
  }

  describe(): string {
    const size = this.kind === 'additive' ? `, attentionSize=${this.attentionSize}` : '';
    return `Attention(${this.kind}, query ${this.querySize}, key ${this.keySize}${size})`;
  }

  /** The named pieces of the flat buffer (views into `buf`, default the parameters). */
  tensors(
    buf: Float32Array = this.weights.data,
  ): Record<string, { shape: number[]; data: Float32Array }> {
    const Hd = this.querySize;
    const He = this.keySize;
    const A = this.attentionSize;
    let at = 0;
    const take = (shape: number[]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return { shape, data: buf.subarray(at, (at += n)) };
    };
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    if (this.kind === 'general') out.score_weight = take([Hd, He]);
    if (this.kind === 'additive') {
      out.query_weight = take([A, Hd]);
      out.key_weight = take([A, He]);
      out.v = take([A]);
    }
    out.combine_weight = take([Hd, He + Hd]);
    return out;
  }

  /**
   * q [T, B, querySize] and enc [S, B, keySize]; returns the attentional states [T, B, querySize]
   * and the weights [T, B, S] (both reused by the next call). Keeps what backward needs.
   */
  forward(
    q: Float32Array,
    enc: Float32Array,
    o: AttentionForwardOptions,
  ): { output: Float32Array; weights: Float32Array } {
    const shape = this.makeShape(o.steps, o.sourceSteps, o.batch);
    const { T, S, B, Hd } = shape;
    this.ws = reuse(this.ws, native.attentionWorkspaceSize(shape));
    this.align = reuse(this.align, T * B * S);
    this.out = reuse(this.out, T * B * Hd);
    native.luongAttentionForward({
      shape,
      params: this.weights.data,
      q,
      enc,
      lengths: o.lengths,
      ws: this.ws,
      align: this.align,
      out: this.out,
    });
    this.shape = shape;
    this.q = q;
    this.enc = enc;
    this.lengths = o.lengths;
    return { output: this.out, weights: this.align };
  }

  /** From d(output): adds into weights.grad and returns dq and denc (reused by the next call). */
  backward(doutput: Float32Array): { dq: Float32Array; denc: Float32Array } {
    const { shape, q, enc, lengths, ws, align, out } = this;
    if (!shape || !q || !enc || !lengths || !ws || !align || !out) {
      throw new Error('Attention.backward called before forward');
    }
    const { T, S, B, Hd, He } = shape;
    // The kernel overwrites dout with the pre-activation gradient; keep the caller's array intact.
    this.dout = reuse(this.dout, T * B * Hd);
    this.dout.set(doutput);
    this.dq = reuse(this.dq, T * B * Hd);
    this.denc = reuse(this.denc, S * B * He);
    native.luongAttentionBackward({
      shape,
      params: this.weights.data,
      q,
      enc,
      lengths,
      ws,
      align,
      out,
      dout: this.dout,
      dq: this.dq,
      denc: this.denc,
      dparams: this.weights.grad,
    });
    return { dq: this.dq, denc: this.denc };
  }

  private makeShape(T: number, S: number, B: number): AttentionShape {
    return {
      kind: this.kind,
      T: checkInt('steps', T, 1),
      S: checkInt('sourceSteps', S, 1),
      B: checkInt('batch', B, 1),
      Hd: this.querySize,
      He: this.keySize,
      A: this.attentionSize,
    };
  }
}
