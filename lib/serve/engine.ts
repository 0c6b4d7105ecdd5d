// Continuous batching at round granularity, inside the engine worker. The rows of the batch live
// in the backend's native token loop (native.TokenLoop: prompts, state, sampling, stops,
// finishing), and each round:
//   1. rows whose request was cancelled end, and rows that arrived join (zero state);
//   2. one backend round: every generating row reads the token it sampled, every priming row a
//      chunk of its prompt (its call's rows a budget in all), the model advances them, and the
//      rows that read their last prompt token or their sampled token sample the next one; rows
//      that ended leave at once.
// A recurrent model reads a prompt one token after another, so every prompt token a row reads
// past the first in a round holds the generating rows for a recurrent step: beside generating
// rows a priming row reads `sharedChunk` tokens a round (a few), alone it reads `primeChunk`
// (a burst of new requests primes as an in-process batch does). Either way a long prompt is
// primed over many rounds, between everyone else's tokens, instead of holding the batch for as
// many steps as it has tokens. Between rounds the worker's event loop runs, which is when new
// rows arrive, and one waiting score request (a whole sequence through the model, for token
// log-probabilities) runs before each round.
import { clearLoop, type RoundBackend, type Schedule } from '../decode/rounds';
import { ragged } from '../decode/options';
import { FINISH_CANCELLED } from '../core/constants';
import type { FromWorker, RowRequest, ScoreRequest } from './protocol';

const EMPTY = new Int32Array(0);

export class StepEngine {
  private incoming: RowRequest[] = [];
  private readonly scoring: ScoreRequest[] = [];
  /** The rows in the loop, by id. */
  private readonly rows = new Map<number, RowRequest>();
  private running = false;

  constructor(
    private readonly backend: RoundBackend,
    private readonly post: (m: FromWorker) => void,
    private readonly schedule: Schedule,
  ) {}

  add(requests: RowRequest[]): void {
    this.incoming.push(...requests);
    this.wake();
  }

  score(request: ScoreRequest): void {
    this.scoring.push(request);
    this.wake();
  }

  private wake(): void {
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  private async run(): Promise<void> {
    while (this.incoming.length + this.rows.size + this.scoring.length > 0) {
      const job = this.scoring.shift();
      if (job) await this.scoreOne(job);
      if (this.incoming.length + this.rows.size > 0) await this.round();
      // Let the worker's event loop deliver new rows before the next round.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.running = false;
  }

  private async scoreOne({ id, tokens, k }: ScoreRequest): Promise<void> {
    try {
      this.post({ type: 'scored', id, scores: await this.backend.score(tokens, k) });
    } catch (error) {
      this.post({ type: 'score-failed', id, message: (error as Error).message });
    }
  }

  private async round(): Promise<void> {
    try {
      this.admit();
      const step = await this.backend.round(this.schedule);
      for (const id of step.done) this.rows.delete(id);
      if (step.rows.length + step.done.length > 0) this.post({ type: 'step', ...step });
    } catch (error) {
      // Backend errors (a round that onnxruntime refuses) fail the rows of the batch; the
      // engine goes on with the rows that arrive later.
      const failed = [...clearLoop(this.backend.loop), ...this.incoming.map((r) => r.id)];
      this.rows.clear();
      this.incoming = [];
      this.post({
        type: 'error',
        rows: Int32Array.from(failed),
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /**
   * Ends the rows of cancelled requests (the loop reports them at the round's end) and lets the
   * new ones in; new rows already cancelled are reported at once.
   */
  private admit(): void {
    const cancelled = (r: RowRequest) => Atomics.load(r.cancel, 0) !== 0;
    const gone = [...this.rows.values()].filter(cancelled);
    if (gone.length > 0) this.backend.loop.cancel(Int32Array.from(gone, (r) => r.id));
    // Each new row's flag is read once: one set in between would otherwise be neither reported
    // nor added.
    const late: RowRequest[] = [];
    for (const r of this.incoming) {
      if (cancelled(r)) {
        late.push(r);
        continue;
      }
      this.backend.loop.add(Int32Array.of(r.id), ragged([r.prompt]), r.options, r.stops, r.group);
      this.rows.set(r.id, r);
    }
    this.incoming = [];
    if (late.length > 0) {
      this.post({
        type: 'step',
        rows: EMPTY,
        tokens: EMPTY,
        done: Int32Array.from(late, (r) => r.id),
        lengths: new Int32Array(late.length),
        finish: new Int32Array(late.length).fill(FINISH_CANCELLED),
      });
    }
  }
}
