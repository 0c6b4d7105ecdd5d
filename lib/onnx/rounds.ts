// Rounds of the native token loop over an rnnkit .onnx file in onnxruntime-node (run() blocks the
// thread that calls it, so this runs in a worker). The loop plans each round and samples it; this
// side runs the graph on the planned rows. Either export kind works: a 'sequence' model feeds a
// row's tokens of a round in one run, a 'step' model (time fixed at 1) one token per run.
import * as ort from 'onnxruntime-node';

import { native, type NativeTokenLoop, type TokenLoopPlan } from '../core/native';
import type { RoundBackend } from '../decode/rounds';
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
  // The state of the rows of a run and the state after it (two each, as a step model's runs
  // alternate between them), reused from round to round: a round allocates only its logits.
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
   * The planned rows are grouped by how many tokens they read, and each group runs without
   * padding (the graphs take no lengths). A round of generating rows (one token each) is a single
   * group.
   */
  async round(chunk: number, budget: number) {
    const plan = this.loop.plan(chunk, budget);
    const V = this.V;
    const logits = new Float32Array(plan.want.length * V);
    const wanted = new Int32Array(plan.rows.length).fill(-1);
    plan.want.forEach((k, i) => (wanted[k] = i));
    const groups = new Map<number, number[]>();
    for (let k = 0; k < plan.rows.length; k++) {
      const T = plan.offsets[k + 1] - plan.offsets[k];
      const group = groups.get(T);
      if (group) group.push(k);
      else groups.set(T, [k]);
    }
    for (const [T, positions] of groups) {
      const last = await this.run(plan, positions, T);
      positions.forEach((k, j) => {
        if (wanted[k] >= 0) logits.set(last.subarray(j * V, (j + 1) * V), wanted[k] * V);
      });
    }
    return this.loop.sample(logits);
  }

  /**
   * Feeds the planned rows at `positions` their T tokens each, from their state in the loop to
   * the state written back there; returns the logits after their last token [n, V].
   */
  private async run(plan: TokenLoopPlan, positions: number[], T: number): Promise<Float32Array> {
    const { L, H } = this;
    const n = positions.length;
    const rows = Int32Array.from(positions, (k) => plan.rows[k]);
    const size = L * n * H;
    const dims = [L, n, H];
    const [h0, c0, h1, c1] = this.states.map((s, i) =>
      i % 2 === 0 || this.lstm ? s.get(size) : null,
    );
    let state = { h: h0 as Float32Array, c: c0 };
    let next = { h: h1 as Float32Array, c: c1 };
    this.loop.readState(rows, state.h, state.c);
    const perRun = this.model.kind === 'step' ? 1 : T;
    let logits: Float32Array = new Float32Array(0);
    for (let t0 = 0; t0 < T; t0 += perRun) {
      const ids = new BigInt64Array(perRun * n);
      positions.forEach((k, j) => {
        for (let t = 0; t < perRun; t++)
          ids[t * n + j] = BigInt(plan.tokens[plan.offsets[k] + t0 + t]);
      });
      const feeds: Record<string, ort.Tensor> = {
        [NAMES.tokens]: new ort.Tensor('int64', ids, [perRun, n]),
        [NAMES.h0]: new ort.Tensor('float32', state.h, dims),
      };
      if (state.c) feeds[NAMES.c0] = new ort.Tensor('float32', state.c, dims);
      // onnxruntime writes the next state straight into the other pair of buffers.
      const fetches: Record<string, ort.Tensor | null> = {
        [NAMES.logits]: null,
        [NAMES.hT]: new ort.Tensor('float32', next.h, dims),
      };
      if (next.c) fetches[NAMES.cT] = new ort.Tensor('float32', next.c, dims);
      const out = await this.session.run(feeds, fetches);
      logits = (out[NAMES.logits].data as Float32Array).subarray((perRun - 1) * n * this.V);
      [state, next] = [next, state];
    }
    this.loop.writeState(rows, state.h, state.c);
    return logits;
  }
}
