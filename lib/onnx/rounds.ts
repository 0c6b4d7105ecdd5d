// Rounds of the native token loop over an rnnkit .onnx file in onnxruntime-node (run() blocks the
// thread that calls it, so this runs in a worker). The loop plans each round and samples it; this
// side runs the graph on the planned rows. Either export kind works: a 'sequence' model feeds
// many positions in one run, a 'step' model (time fixed at 1) one position per run.
import * as ort from 'onnxruntime-node';

import { native, type NativeTokenLoop, type TokenLoopPlan } from '../core/native';
import { checkScoreInput, scoresFromLogits, type TokenScores } from '../decode/logprobs';
import type { RoundBackend, Schedule } from '../decode/rounds';
import { NAMES, type OnnxModelInfo } from './format';
import { openOnnxSession } from './session';

/** A buffer that grows to the largest size asked of it and lends views of that size. */
class Scratch {
  private buf = new Float32Array(0);

  get(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(n);
    return this.buf.subarray(0, n);
  }
}

export class OnnxRounds implements RoundBackend {
  readonly loop: NativeTokenLoop;
  private readonly L: number;
  private readonly H: number;
  private readonly V: number;
  private readonly lstm: boolean;
  // The state of the rows of a run, h and c, and the state after it, reused from run to run: a
  // round allocates little more than its logits.
  private readonly states = Array.from({ length: 4 }, () => new Scratch());

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly model: OnnxModelInfo,
  ) {
    const s = model.spec;
    this.L = s.numLayers;
    this.H = s.hiddenSize;
    this.V = s.vocabSize;
    this.lstm = s.cell === 'lstm';
    this.loop = new native.TokenLoop({ V: this.V, L: this.L, H: this.H, lstm: this.lstm });
  }

  /** Opens `file` as openOnnxSession does (the same checks, errors and session settings). */
  static async open(file: string, threads: number | undefined): Promise<OnnxRounds> {
    const { session, info } = await openOnnxSession(file, threads);
    return new OnnxRounds(session, info);
  }

  /**
   * The graphs take no lengths, so no row may read padding: the planned rows are taken shortest
   * feed first, and each run covers the positions up to the end of the shortest feed still open,
   * for the rows still open. A round of generating rows (one token each) is a single run; a step
   * model (time fixed at 1) advances one position per run.
   */
  async round(s: Schedule) {
    const plan = this.loop.plan(s.chunk, s.sharedChunk, s.budget);
    const V = this.V;
    const length = (k: number) => plan.offsets[k + 1] - plan.offsets[k];
    const logits = new Float32Array(plan.want.length * V);
    const wanted = new Int32Array(plan.rows.length).fill(-1);
    plan.want.forEach((k, i) => (wanted[k] = i));
    let open = Array.from({ length: plan.rows.length }, (_, k) => k).sort(
      (a, b) => length(a) - length(b),
    );
    for (let pos = 0; open.length > 0;) {
      const end = this.model.kind === 'step' ? pos + 1 : length(open[0]);
      const last = await this.run(plan, open, pos, end);
      open.forEach((k, j) => {
        if (length(k) === end && wanted[k] >= 0) {
          logits.set(last.subarray(j * V, (j + 1) * V), wanted[k] * V);
        }
      });
      pos = end;
      open = open.filter((k) => length(k) > pos);
    }
    return this.loop.sample(logits);
  }

  /**
   * Scores a sequence from zero state (see TokenScores): one run over it, or a run per token for
   * a step model.
   */
  async score(tokens: Int32Array, k: number): Promise<TokenScores> {
    const { L, H, V } = this;
    checkScoreInput(tokens, k, V);
    const n = tokens.length - 1;
    const T = this.model.kind === 'step' ? 1 : n;
    const logits = new Float32Array(n * V);
    const dims = [L, 1, H];
    let h: Float32Array = new Float32Array(L * H);
    let c: Float32Array | null = this.lstm ? new Float32Array(L * H) : null;
    for (let from = 0; from < n; from += T) {
      const ids = BigInt64Array.from(tokens.subarray(from, from + T), (v) => BigInt(v));
      const feeds: Record<string, ort.Tensor> = {
        [NAMES.tokens]: new ort.Tensor('int64', ids, [T, 1]),
        [NAMES.h0]: new ort.Tensor('float32', h, dims),
      };
      if (c) feeds[NAMES.c0] = new ort.Tensor('float32', c, dims);
      const out = await this.session.run(feeds);
      logits.set(out[NAMES.logits].data as Float32Array, from * V);
      h = out[NAMES.hT].data as Float32Array;
      if (c) c = out[NAMES.cT].data as Float32Array;
    }
    return scoresFromLogits(logits, V, tokens, k);
  }

  /**
   * One session run: the planned rows at `positions` read the tokens [from, to) of their feeds,
   * from their state in the loop to the state written back there; returns the logits after the
   * last token [n, V].
   */
  private async run(
    plan: TokenLoopPlan,
    positions: number[],
    from: number,
    to: number,
  ): Promise<Float32Array> {
    const { L, H, V } = this;
    const n = positions.length;
    const T = to - from;
    const rows = Int32Array.from(positions, (k) => plan.rows[k]);
    const dims = [L, n, H];
    const [h0, c0, hT, cT] = this.states.map((s, i) =>
      i % 2 === 0 || this.lstm ? s.get(L * n * H) : null,
    );
    this.loop.readState(rows, h0 as Float32Array, c0);
    const ids = new BigInt64Array(T * n);
    positions.forEach((k, j) => {
      for (let t = 0; t < T; t++) ids[t * n + j] = BigInt(plan.tokens[plan.offsets[k] + from + t]);
    });
    const feeds: Record<string, ort.Tensor> = {
      [NAMES.tokens]: new ort.Tensor('int64', ids, [T, n]),
      [NAMES.h0]: new ort.Tensor('float32', h0 as Float32Array, dims),
    };
    if (c0) feeds[NAMES.c0] = new ort.Tensor('float32', c0, dims);
    // onnxruntime writes the next state straight into reused buffers.
    const fetches: Record<string, ort.Tensor | null> = {
      [NAMES.logits]: null,
      [NAMES.hT]: new ort.Tensor('float32', hT as Float32Array, dims),
    };
    if (cT) fetches[NAMES.cT] = new ort.Tensor('float32', cT, dims);
    const out = await this.session.run(feeds, fetches);
    this.loop.writeState(rows, hT as Float32Array, cT);
    return (out[NAMES.logits].data as Float32Array).subarray((T - 1) * n * V);
  }
}
