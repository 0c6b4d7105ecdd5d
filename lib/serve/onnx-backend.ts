// The step backend over an rnnkit .onnx file in onnxruntime-node, for the engine worker (run()
// blocks the thread that calls it). Either export kind works: a 'sequence' model feeds a prompt
// chunk in one run, a 'step' model (time fixed at 1) one token per run.
import * as ort from 'onnxruntime-node';

import { ragged, type Ragged } from '../decode/options';
import { NAMES, type OnnxModelInfo } from '../onnx/format';
import { openOnnxSession } from '../onnx/session';
import { rowLengths, type StepBackend } from './backend';
import { StateLayout, type RowStates } from './state';

export class OnnxStepBackend implements StepBackend {
  readonly vocabSize: number;
  readonly layout: StateLayout;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly model: OnnxModelInfo,
  ) {
    const s = model.spec;
    this.vocabSize = s.vocabSize;
    this.layout = new StateLayout(s.numLayers, s.hiddenSize, s.cell === 'lstm');
  }

  /** Opens `file` as openOnnxSession does (the same checks, errors and session settings). */
  static async open(file: string, threads: number | undefined): Promise<OnnxStepBackend> {
    const { session, info } = await openOnnxSession(file, threads);
    return new OnnxStepBackend(session, info);
  }

  /**
   * Rows are grouped by how many tokens they are fed, and each group runs without padding (the
   * graphs take no lengths). A step (one token per row) is a single group.
   */
  async forward(
    seqs: Ragged,
    state: RowStates,
    want: Int32Array,
  ): Promise<{ logits: Float32Array; state: RowStates }> {
    const all = await this.forwardAll(seqs, state);
    const V = this.vocabSize;
    const logits = new Float32Array(want.length * V);
    want.forEach((b, i) => logits.set(all.logits.subarray(b * V, (b + 1) * V), i * V));
    return { logits, state: all.state };
  }

  /** forward with the logits of every row [n, V]. */
  private async forwardAll(
    seqs: Ragged,
    state: RowStates,
  ): Promise<{ logits: Float32Array; state: RowStates }> {
    const V = this.vocabSize;
    const lengths = rowLengths(seqs);
    const groups = new Map<number, number[]>();
    lengths.forEach((len, b) => {
      const group = groups.get(len);
      if (group) group.push(b);
      else groups.set(len, [b]);
    });
    if (groups.size === 1) return this.run(seqs, lengths[0], state);
    const logits = new Float32Array(state.n * V);
    const next = this.layout.zeros(state.n);
    for (const [T, rows] of groups) {
      const part = ragged(
        rows.map((b) => seqs.tokens.subarray(seqs.offsets[b], seqs.offsets[b + 1])),
      );
      const start = this.layout.select(state, rows);
      const out = await this.run(part, T, start);
      this.layout.release(start);
      this.layout.assign(next, rows, out.state);
      rows.forEach((b, i) => logits.set(out.logits.subarray(i * V, (i + 1) * V), b * V));
    }
    return { logits, state: next };
  }

  /** Feeds every row the same number T of tokens: one run, or T for a step model. */
  private async run(
    seqs: Ragged,
    T: number,
    state: RowStates,
  ): Promise<{ logits: Float32Array; state: RowStates }> {
    const n = state.n;
    const perRun = this.model.kind === 'step' ? 1 : T;
    let current = state;
    let logits: Float32Array = new Float32Array(0);
    for (let t0 = 0; t0 < T; t0 += perRun) {
      const ids = new BigInt64Array(perRun * n);
      for (let t = 0; t < perRun; t++) {
        for (let b = 0; b < n; b++) ids[t * n + b] = BigInt(seqs.tokens[seqs.offsets[b] + t0 + t]);
      }
      const dims = [this.layout.L, n, this.layout.H];
      const feeds: Record<string, ort.Tensor> = {
        [NAMES.tokens]: new ort.Tensor('int64', ids, [perRun, n]),
        [NAMES.h0]: new ort.Tensor('float32', current.h, dims),
      };
      if (current.c) feeds[NAMES.c0] = new ort.Tensor('float32', current.c, dims);
      // The next state goes straight into pooled arrays (onnxruntime fills pre-allocated
      // outputs), so a step allocates only its logits.
      const next = this.layout.zeros(n);
      const fetches: Record<string, ort.Tensor | null> = {
        [NAMES.logits]: null,
        [NAMES.hT]: new ort.Tensor('float32', next.h, dims),
      };
      if (next.c) fetches[NAMES.cT] = new ort.Tensor('float32', next.c, dims);
      const out = await this.session.run(feeds, fetches);
      const all = out[NAMES.logits].data as Float32Array;
      logits = all.subarray((perRun - 1) * n * this.vocabSize);
      if (current !== state) this.layout.release(current);
      current = next;
    }
    return { logits, state: current };
  }
}
