// Continuous batching at step granularity, inside the engine worker. Every row of the batch is a
// prompt being primed or a continuation being generated, and each iteration:
//   1. rows whose request was cancelled leave, and rows that arrived join (zero state);
//   2. rows that have next-token logits sample a token (per-row random streams, so a row's tokens
//      do not depend on who else is in the batch); finished rows leave at once;
//   3. one backend call advances every row by one token: its sampled token, or its next prompt
//      token. A prompt is thus primed inside the batch's own steps and its row starts sampling the
//      step after its last prompt token.
// Priming one token per step costs the rows already generating nothing: a separate prompt pass
// of T tokens would hold them for T sequential recurrent steps, and with requests arriving all
// the time that stall would come at nearly every step. When no row is generating, nobody waits,
// so the prompts are fed up to `primeChunk` tokens per call instead (one pass for a burst of new
// requests, as an in-process batch primes). Between iterations the worker's event loop runs,
// which is when new rows arrive.
import { matchedStop, ragged, usesHistory } from '../decode/options';
import { native, type NativeSamplerOptions } from '../core/native';
import type { StepBackend } from './backend';
import {
  FINISH_CANCELLED,
  FINISH_LENGTH,
  FINISH_STOP,
  type FromWorker,
  type RowRequest,
} from './protocol';
import type { RowStates } from './state';

interface Row {
  request: RowRequest;
  /** Prompt, then the generated tokens: the sampler's history and the stop matcher's input. */
  seq: Int32Array;
  /** Prompt tokens fed so far. */
  primed: number;
  generated: number;
  rng: bigint;
  /** Next-token logits [V], once the whole prompt is fed; until then null. */
  logits: Float32Array | null;
}

const EMPTY = new Int32Array(0);

function sameSampler(a: NativeSamplerOptions, b: NativeSamplerOptions): boolean {
  return (
    a.temperature === b.temperature &&
    a.topK === b.topK &&
    a.topP === b.topP &&
    a.repetitionPenalty === b.repetitionPenalty &&
    a.noRepeatNgramSize === b.noRepeatNgramSize
  );
}

const primedFully = (r: Row) => r.primed === r.request.prompt.length;

export class StepEngine {
  private readonly V: number;
  private incoming: Row[] = [];
  private rows: Row[] = [];
  /** The rows' recurrent state, row for row. */
  private state: RowStates;
  private running = false;

  constructor(
    private readonly backend: StepBackend,
    private readonly post: (m: FromWorker) => void,
    private readonly primeChunk: number,
  ) {
    this.V = backend.vocabSize;
    this.state = backend.layout.zeros(0);
  }

  add(requests: RowRequest[]): void {
    for (const request of requests) {
      const seq = new Int32Array(request.prompt.length + request.maxTokens);
      seq.set(request.prompt);
      const [rng] = native.rngInit(request.seed, request.rowIndex, 1);
      this.incoming.push({ request, seq, primed: 0, generated: 0, rng, logits: null });
    }
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  private async run(): Promise<void> {
    while (this.incoming.length + this.rows.length > 0) {
      try {
        this.admit();
        this.sample();
        await this.advance();
      } catch (error) {
        // Backend errors (a step that onnxruntime refuses) fail the rows of the batch; the
        // engine goes on with the rows that arrive later.
        const failed = [...this.rows, ...this.incoming];
        this.rows = [];
        this.incoming = [];
        this.replaceState(this.backend.layout.zeros(0));
        this.post({
          type: 'error',
          rows: Int32Array.from(failed, (r) => r.request.id),
          message: error instanceof Error ? error.message : String(error),
        });
      }
      // Let the worker's event loop deliver new rows before the next step.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.running = false;
  }

  /** Drops cancelled rows (reported as such) and lets the new ones in. */
  private admit(): void {
    // Each flag is read once, by the one pass that sorts the rows: the main thread sets them at
    // any time, and a row dropped on a second reading but missing from `gone` would never be
    // reported.
    const gone: Row[] = [];
    const stays = (r: Row) => Atomics.load(r.request.cancel, 0) === 0 || (gone.push(r), false);
    const rows = this.rows.filter(stays);
    const incoming = this.incoming.filter(stays);
    if (gone.length > 0) {
      this.incoming = incoming;
      this.keep(rows);
      this.post({
        type: 'step',
        rows: EMPTY,
        tokens: EMPTY,
        done: Int32Array.from(gone, (r) => r.request.id),
        lengths: Int32Array.from(gone, (r) => r.generated),
        finish: new Int32Array(gone.length).fill(FINISH_CANCELLED),
      });
    }
    if (this.incoming.length > 0) {
      const layout = this.backend.layout;
      const fresh = layout.zeros(this.incoming.length);
      this.replaceState(layout.concat(this.state, fresh));
      layout.release(fresh);
      this.rows.push(...this.incoming);
      this.incoming = [];
    }
  }

  /** Keeps `kept` (a subsequence of the rows) and their state. */
  private keep(kept: Row[]): void {
    if (kept.length === this.rows.length) return;
    const index = new Map(this.rows.map((r, i) => [r, i]));
    this.replaceState(
      this.backend.layout.select(
        this.state,
        kept.map((r) => index.get(r) as number),
      ),
    );
    this.rows = kept;
  }

  private replaceState(next: RowStates): void {
    this.backend.layout.release(this.state);
    this.state = next;
  }

  /**
   * Samples a token for every row with logits, reports the step and lets finished rows go. One
   * native sampler call per run of neighbouring rows with the same settings; rows whose sampler
   * reads the history go one at a time, with their own.
   */
  private sample(): void {
    const ready = this.rows.filter((r) => r.logits !== null);
    const n = ready.length;
    if (n === 0) return;
    const V = this.V;
    const logits = new Float32Array(n * V);
    ready.forEach((r, i) => logits.set(r.logits as Float32Array, i * V));
    const tokens = new Int32Array(n);
    const rng = BigUint64Array.from(ready, (r) => r.rng);
    for (let i = 0; i < n;) {
      const s = ready[i].request.sampler;
      let j = i + 1;
      if (!usesHistory(s)) {
        while (j < n && sameSampler(ready[j].request.sampler, s)) j++;
      }
      const seen = ready[i].request.prompt.length + ready[i].generated;
      const history = usesHistory(s)
        ? { tokens: ready[i].seq.subarray(0, seen), offsets: Int32Array.of(0, seen) }
        : { tokens: EMPTY, offsets: new Int32Array(j - i + 1) };
      const picked = native.sampleTokens(
        logits.subarray(i * V, j * V),
        { B: j - i, V },
        history,
        s,
        rng.subarray(i, j),
      );
      tokens.set(picked, i);
      i = j;
    }
    const finished = new Set<Row>();
    const done: number[] = [];
    const lengths: number[] = [];
    const finish: number[] = [];
    ready.forEach((r, i) => {
      const p = r.request.prompt.length;
      r.rng = rng[i];
      r.seq[p + r.generated++] = tokens[i];
      r.logits = null;
      const stop = matchedStop(r.request.stops, r.seq.subarray(p, p + r.generated));
      if (stop === 0 && r.generated < r.request.maxTokens) return;
      finished.add(r);
      done.push(r.request.id);
      lengths.push(r.generated - stop);
      finish.push(stop > 0 ? FINISH_STOP : FINISH_LENGTH);
    });
    this.post({
      type: 'step',
      rows: Int32Array.from(ready, (r) => r.request.id),
      tokens,
      done: Int32Array.from(done),
      lengths: Int32Array.from(lengths),
      finish: Int32Array.from(finish),
    });
    if (finished.size > 0) this.keep(this.rows.filter((r) => !finished.has(r)));
  }

  /**
   * Feeds every row its next token (the one it sampled, or its next prompt token), or when no
   * row is generating yet, up to primeChunk prompt tokens; rows whose prompt is then complete
   * get their next-token logits.
   */
  private async advance(): Promise<void> {
    const rows = this.rows;
    if (rows.length === 0) return;
    const perRow = rows.some(primedFully) ? 1 : this.primeChunk;
    const feed = rows.map((r) => {
      if (primedFully(r)) {
        const last = r.request.prompt.length + r.generated - 1;
        return r.seq.subarray(last, last + 1);
      }
      return r.request.prompt.subarray(
        r.primed,
        Math.min(r.request.prompt.length, r.primed + perRow),
      );
    });
    rows.forEach((r, i) => (r.primed += primedFully(r) ? 0 : feed[i].length));
    const want = Int32Array.from(rows.flatMap((r, i) => (primedFully(r) ? [i] : [])));
    const out = await this.backend.forward(ragged(feed), this.state, want);
    this.replaceState(out.state);
    const V = this.V;
    want.forEach((b, i) => (rows[b].logits = out.logits.subarray(i * V, (i + 1) * V)));
  }
}
