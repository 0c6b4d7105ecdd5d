// Continuous batching at step granularity, inside the engine worker. Each iteration:
//   1. rows whose request was cancelled leave (waiting, priming or active);
//   2. rows being primed advance by up to `primeChunk` prompt tokens in one backend call, and the
//      rows whose prompt is done join the active batch with the logits of their last prompt token;
//   3. every active row samples one token (per-row random streams, so a row's tokens do not depend
//      on who else is in the batch), finished rows leave at once, and one backend call advances
//      the rest by their new token.
// Prompts are primed in chunks so a long prompt delays the others' next token by one chunk, not
// by the whole prompt. Between iterations the worker's event loop runs, which is when new rows
// arrive.
import { matchedStop, ragged } from '../generate/options';
import { native, type NativeSamplerOptions } from '../native';
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
}

const EMPTY = new Int32Array(0);

function usesHistory(s: NativeSamplerOptions): boolean {
  return s.repetitionPenalty !== 1 || s.noRepeatNgramSize > 0;
}

function sameSampler(a: NativeSamplerOptions, b: NativeSamplerOptions): boolean {
  return (
    a.temperature === b.temperature &&
    a.topK === b.topK &&
    a.topP === b.topP &&
    a.repetitionPenalty === b.repetitionPenalty &&
    a.noRepeatNgramSize === b.noRepeatNgramSize
  );
}

/** The logits of rows `rows` (in that order) of a [n, V] array. */
function logitRows(logits: Float32Array, V: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * V);
  rows.forEach((r, i) => out.set(logits.subarray(r * V, (r + 1) * V), i * V));
  return out;
}

function concatFloats(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class StepEngine {
  private readonly V: number;
  private incoming: Row[] = [];
  private priming: Row[] = [];
  private primeState: RowStates;
  private active: Row[] = [];
  private state: RowStates;
  /** Next-token logits of the active rows [n, V]. */
  private logits: Float32Array = new Float32Array(0);
  private running = false;

  constructor(
    private readonly backend: StepBackend,
    private readonly post: (m: FromWorker) => void,
    private readonly primeChunk: number,
  ) {
    this.V = backend.vocabSize;
    this.primeState = backend.layout.zeros(0);
    this.state = backend.layout.zeros(0);
  }

  add(requests: RowRequest[]): void {
    for (const request of requests) {
      const seq = new Int32Array(request.prompt.length + request.maxTokens);
      seq.set(request.prompt);
      const [rng] = native.rngInit(request.seed, request.rowIndex, 1);
      this.incoming.push({ request, seq, primed: 0, generated: 0, rng });
    }
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  private async run(): Promise<void> {
    while (this.incoming.length + this.priming.length + this.active.length > 0) {
      try {
        this.dropCancelled();
        await this.prime();
        await this.step();
      } catch (error) {
        // Backend failures are caught per call above; anything else is a bug, and the rows it
        // reaches get its message instead of a dead worker.
        this.reset(error);
      }
      // Let the worker's event loop deliver new rows before the next step.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.running = false;
  }

  private dropCancelled(): void {
    const cancelled = (r: Row) => Atomics.load(r.request.cancel, 0) !== 0;
    const gone = [...this.incoming, ...this.priming, ...this.active].filter(cancelled);
    if (gone.length === 0) return;
    this.incoming = this.incoming.filter((r) => !cancelled(r));
    const keepPriming = indicesWhere(this.priming, (r) => !cancelled(r));
    this.priming = keepPriming.map((i) => this.priming[i]);
    this.primeState = this.backend.layout.select(this.primeState, keepPriming);
    this.keepActive(indicesWhere(this.active, (r) => !cancelled(r)));
    this.post({
      type: 'step',
      rows: EMPTY,
      tokens: EMPTY,
      done: Int32Array.from(gone, (r) => r.request.id),
      lengths: Int32Array.from(gone, (r) => r.generated),
      finish: new Int32Array(gone.length).fill(FINISH_CANCELLED),
    });
  }

  private keepActive(keep: number[]): void {
    if (keep.length === this.active.length) return;
    this.active = keep.map((i) => this.active[i]);
    this.state = this.backend.layout.select(this.state, keep);
    this.logits = logitRows(this.logits, this.V, keep);
  }

  private async prime(): Promise<void> {
    const layout = this.backend.layout;
    if (this.incoming.length > 0) {
      this.primeState = layout.concat(this.primeState, layout.zeros(this.incoming.length));
      this.priming.push(...this.incoming);
      this.incoming = [];
    }
    if (this.priming.length === 0) return;
    const rows = this.priming;
    const chunks = rows.map((r) => {
      const end = Math.min(r.request.prompt.length, r.primed + this.primeChunk);
      return r.request.prompt.subarray(r.primed, end);
    });
    let out: { logits: Float32Array; state: RowStates };
    try {
      out = await this.backend.forward(ragged(chunks), this.primeState);
    } catch (error) {
      this.priming = [];
      this.primeState = layout.zeros(0);
      this.fail(rows, error);
      return;
    }
    rows.forEach((r, i) => (r.primed += chunks[i].length));
    const ready = indicesWhere(rows, (r) => r.primed === r.request.prompt.length);
    const waiting = indicesWhere(rows, (r) => r.primed < r.request.prompt.length);
    this.priming = waiting.map((i) => rows[i]);
    this.primeState = layout.select(out.state, waiting);
    if (ready.length === 0) return;
    this.active.push(...ready.map((i) => rows[i]));
    this.state = layout.concat(this.state, layout.select(out.state, ready));
    this.logits = concatFloats(this.logits, logitRows(out.logits, this.V, ready));
  }

  /** Samples every active row's next token, lets finished rows go, advances the rest. */
  private async step(): Promise<void> {
    const rows = this.active;
    const n = rows.length;
    if (n === 0) return;
    const tokens = this.sample();
    const keep: number[] = [];
    const done: number[] = [];
    const lengths: number[] = [];
    const finish: number[] = [];
    rows.forEach((r, i) => {
      const p = r.request.prompt.length;
      r.seq[p + r.generated++] = tokens[i];
      const stop = matchedStop(r.request.stops, r.seq.subarray(p, p + r.generated));
      if (stop === 0 && r.generated < r.request.maxTokens) {
        keep.push(i);
        return;
      }
      done.push(r.request.id);
      lengths.push(r.generated - stop);
      finish.push(stop > 0 ? FINISH_STOP : FINISH_LENGTH);
    });
    this.post({
      type: 'step',
      rows: Int32Array.from(rows, (r) => r.request.id),
      tokens,
      done: Int32Array.from(done),
      lengths: Int32Array.from(lengths),
      finish: Int32Array.from(finish),
    });
    this.keepActive(keep);
    if (keep.length === 0) return;
    const next = ragged(keep.map((i) => tokens.subarray(i, i + 1)));
    try {
      ({ logits: this.logits, state: this.state } = await this.backend.forward(next, this.state));
    } catch (error) {
      const failed = this.active;
      this.active = [];
      this.state = this.backend.layout.zeros(0);
      this.logits = new Float32Array(0);
      this.fail(failed, error);
    }
  }

  /**
   * One native sampler call per run of neighbouring rows with the same settings (a request's rows
   * are neighbours); rows whose sampler reads the history go one at a time, with their own.
   */
  private sample(): Int32Array {
    const rows = this.active;
    const n = rows.length;
    const V = this.V;
    const tokens = new Int32Array(n);
    const rng = BigUint64Array.from(rows, (r) => r.rng);
    for (let i = 0; i < n;) {
      const s = rows[i].request.sampler;
      let j = i + 1;
      if (!usesHistory(s)) {
        while (j < n && sameSampler(rows[j].request.sampler, s)) j++;
      }
      const r = rows[i];
      const seen = r.request.prompt.length + r.generated;
      const history = usesHistory(s)
        ? { tokens: r.seq.subarray(0, seen), offsets: Int32Array.of(0, seen) }
        : { tokens: EMPTY, offsets: new Int32Array(j - i + 1) };
      const picked = native.sampleTokens(
        this.logits.subarray(i * V, j * V),
        { B: j - i, V },
        history,
        s,
        rng.subarray(i, j),
      );
      tokens.set(picked, i);
      i = j;
    }
    rows.forEach((r, i) => (r.rng = rng[i]));
    return tokens;
  }

  private reset(error: unknown): void {
    const rows = [...this.incoming, ...this.priming, ...this.active];
    this.incoming = [];
    this.priming = [];
    this.active = [];
    this.primeState = this.backend.layout.zeros(0);
    this.state = this.backend.layout.zeros(0);
    this.logits = new Float32Array(0);
    this.fail(rows, error);
  }

  private fail(rows: Row[], error: unknown): void {
    this.post({
      type: 'error',
      rows: Int32Array.from(rows, (r) => r.request.id),
      message: error instanceof Error ? error.message : String(error),
    });
  }
}

function indicesWhere<T>(items: T[], keep: (item: T) => boolean): number[] {
  const out: number[] = [];
  items.forEach((item, i) => keep(item) && out.push(i));
  return out;
}
