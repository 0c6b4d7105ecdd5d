// The generation loop over an onnxruntime session, with native.lmGenerate's contract: the same
// priming, per-row stop and length checks, and the shared native sampler with the same per-row
// generator streams, so that for the same seed and logits it picks the same tokens.
import * as ort from 'onnxruntime-node';

import { matchedStop, samplerOf, usesHistory, type Ragged } from '../decode/options';
import type { LanguageModelSpec } from '../models/language-model';
import { native, type NativeGenerateOptions, type NativeGenerateResult } from '../core/native';
import { NAMES, type OnnxKind } from './format';
import type { OnTokens } from '../decode/token-loop';

const FINISH_LENGTH = 0;
const FINISH_STOP = 1;
const FINISH_CANCELLED = 2;

/** The recurrent state of n rows: h (and c for LSTM), each [L, n, H]. */
interface State {
  h: Float32Array;
  c: Float32Array | null;
}

export class OnnxTokenLoop {
  private readonly L: number;
  private readonly H: number;
  private readonly V: number;
  private readonly lstm: boolean;

  constructor(
    private readonly session: ort.InferenceSession,
    spec: LanguageModelSpec,
    private readonly kind: OnnxKind,
  ) {
    this.L = spec.numLayers;
    this.H = spec.hiddenSize;
    this.V = spec.vocabSize;
    this.lstm = spec.cell === 'lstm';
  }

  /** Copies state rows `rows` (indices into a batch of n) into a new [L, rows.length, H] array. */
  private gather(src: Float32Array, n: number, rows: ArrayLike<number>): Float32Array {
    const { L, H } = this;
    const m = rows.length;
    const dst = new Float32Array(L * m * H);
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < m; j++) {
        const from = (l * n + rows[j]) * H;
        dst.set(src.subarray(from, from + H), (l * m + j) * H);
      }
    }
    return dst;
  }

  /** The inverse of gather: writes [L, rows.length, H] into rows `rows` of dst [L, n, H]. */
  private scatter(dst: Float32Array, n: number, rows: ArrayLike<number>, src: Float32Array): void {
    const { L, H } = this;
    const m = rows.length;
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < m; j++) {
        const from = (l * m + j) * H;
        dst.set(src.subarray(from, from + H), (l * n + rows[j]) * H);
      }
    }
  }

  /** One session run: ids [T, n] from `state` -> logits [T, n, V] and the next state. */
  private async run(
    ids: BigInt64Array,
    T: number,
    n: number,
    state: State,
  ): Promise<{ logits: Float32Array; state: State }> {
    const dims = [this.L, n, this.H];
    const feeds: Record<string, ort.Tensor> = {
      [NAMES.tokens]: new ort.Tensor('int64', ids, [T, n]),
      [NAMES.h0]: new ort.Tensor('float32', state.h, dims),
    };
    if (state.c) feeds[NAMES.c0] = new ort.Tensor('float32', state.c, dims);
    const out = await this.session.run(feeds);
    return {
      logits: out[NAMES.logits].data as Float32Array,
      state: {
        h: out[NAMES.hT].data as Float32Array,
        c: this.lstm ? (out[NAMES.cT].data as Float32Array) : null,
      },
    };
  }

  /**
   * Runs every prompt from a zero state; returns each row's logits after its last prompt token
   * [B, V] and the state there [L, B, H]. Rows are taken shortest prompt first, and each run covers
   * the prompt positions up to the end of the shortest prompt still open, for the rows still open:
   * no row is ever fed padding, so no state needs masking, and the sequence model primes a batch
   * of equal-length prompts in a single run. A step model (time fixed at 1) advances one position
   * per run.
   */
  private async prime(prompts: Ragged): Promise<{ logits: Float32Array; state: State }> {
    const { L, H, V } = this;
    const B = prompts.offsets.length - 1;
    const length = (b: number) => prompts.offsets[b + 1] - prompts.offsets[b];
    const state: State = {
      h: new Float32Array(L * B * H),
      c: this.lstm ? new Float32Array(L * B * H) : null,
    };
    const logits = new Float32Array(B * V);
    let open = Int32Array.from({ length: B }, (_, b) => b).sort((a, b) => length(a) - length(b));
    for (let pos = 0; open.length > 0;) {
      const n = open.length;
      const end = this.kind === 'step' ? pos + 1 : length(open[0]);
      const T = end - pos;
      const ids = new BigInt64Array(T * n);
      for (let i = 0; i < n; i++) {
        const at = prompts.offsets[open[i]] + pos;
        for (let t = 0; t < T; t++) ids[t * n + i] = BigInt(prompts.tokens[at + t]);
      }
      const out = await this.run(ids, T, n, {
        h: this.gather(state.h, B, open),
        c: state.c && this.gather(state.c, B, open),
      });
      this.scatter(state.h, B, open, out.state.h);
      if (state.c && out.state.c) this.scatter(state.c, B, open, out.state.c);
      const last = out.logits.subarray((T - 1) * n * V);
      open.forEach((b, i) => {
        if (length(b) === end) logits.set(last.subarray(i * V, (i + 1) * V), b * V);
      });
      pos = end;
      open = open.filter((b) => length(b) > pos);
    }
    return { logits, state };
  }

  /** Row b's history for the sampler: its prompt, then the `steps` tokens it generated. */
  private history(prompts: Ragged, rows: Int32Array, tokens: Int32Array, steps: number): Ragged {
    const M = tokens.length / (prompts.offsets.length - 1);
    const offsets = new Int32Array(rows.length + 1);
    rows.forEach((b, i) => {
      offsets[i + 1] = offsets[i] + prompts.offsets[b + 1] - prompts.offsets[b] + steps;
    });
    const out = new Int32Array(offsets[rows.length]);
    rows.forEach((b, i) => {
      out.set(prompts.tokens.subarray(prompts.offsets[b], prompts.offsets[b + 1]), offsets[i]);
      out.set(tokens.subarray(b * M, b * M + steps), offsets[i + 1] - steps);
    });
    return { tokens: out, offsets };
  }

  /**
   * Generates up to maxTokens tokens after each prompt: lmGenerate's contract (see
   * native/core/generate.h), with the cancel flag read once per step.
   */
  async generate(
    prompts: Ragged,
    options: NativeGenerateOptions,
    stops: Ragged | null,
    cancel: Int32Array,
    onTokens?: OnTokens,
  ): Promise<NativeGenerateResult> {
    const B = prompts.offsets.length - 1;
    const M = options.maxTokens;
    const tokens = new Int32Array(B * M).fill(-1);
    const lengths = new Int32Array(B);
    const finish = new Int32Array(B).fill(FINISH_LENGTH);
    const cancelled = () => Atomics.load(cancel, 0) !== 0;
    if (cancelled()) return { tokens, lengths, finish: finish.fill(FINISH_CANCELLED) };

    let { logits, state } = await this.prime(prompts);
    let rng = native.rngInit(options.seed, options.rowOffset, B);
    const sampler = samplerOf(options);
    // Like the native loop, keep no history unless the sampler reads it.
    const useHistory = usesHistory(sampler);
    let rows = Int32Array.from({ length: B }, (_, b) => b);
    for (let step = 0; ; step++) {
      if (cancelled()) {
        rows.forEach((b) => (finish[b] = FINISH_CANCELLED));
        break;
      }
      const n = rows.length;
      const history = useHistory
        ? this.history(prompts, rows, tokens, step)
        : { tokens: new Int32Array(0), offsets: new Int32Array(n + 1) };
      const next = native.sampleTokens(logits, { B: n, V: this.V }, history, sampler, rng);
      rows.forEach((b, i) => (tokens[b * M + step] = next[i]));
      onTokens?.(step, rows, next);

      const keep: number[] = [];
      rows.forEach((b, i) => {
        const gen = tokens.subarray(b * M, b * M + step + 1);
        const stop = matchedStop(stops, gen);
        lengths[b] = step + 1 - stop;
        if (stop > 0) {
          gen.fill(-1, lengths[b]);
          finish[b] = FINISH_STOP;
        } else if (step + 1 === M) {
          finish[b] = FINISH_LENGTH;
        } else {
          keep.push(i);
        }
      });
      if (keep.length === 0) break;
      // Finished rows leave the batch, so later steps run on the active rows only.
      if (keep.length < n) {
        state = {
          h: this.gather(state.h, n, keep),
          c: state.c && this.gather(state.c, n, keep),
        };
        rng = BigUint64Array.from(keep, (i) => rng[i]);
        rows = Int32Array.from(keep, (i) => rows[i]);
      }
      const ids = BigInt64Array.from(keep, (i) => BigInt(next[i]));
      ({ logits, state } = await this.run(ids, 1, keep.length, state));
    }
    return { tokens, lengths, finish };
  }
}
