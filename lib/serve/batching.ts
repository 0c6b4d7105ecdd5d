// BatchingGenerator: concurrent generate/stream calls share one batch, stepped in a worker thread
// (engine.ts). This side checks and encodes each call on its own (lib/generate/token-loop.ts, over
// lib/generate/options.ts), so a bad call is rejected before it reaches the batch; it queues
// prompts for batch slots (at most maxCallRows rows of a call at once), enforces the queue limits,
// routes the worker's tokens to their calls
// and decodes text.
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';

import { checkScoreInput, type TokenScorer, type TokenScores } from '../decode/logprobs';
import type { GenerateOptions, StreamOptions } from '../decode/options';
import type { GeneratorInfo, TextGenerator } from '../decode/text-generator';
import { LanguageModelNetwork, type LanguageModelSpec } from '../models/language-model';
import type { NativeGenerateResult } from '../core/native';
import { checkInt } from '../core/validate';
import {
  completeText,
  generateText,
  streamText,
  type Completion,
  type StreamEnd,
  type OnTokens,
  type TokenLoop,
} from '../decode/token-loop';
import { tokenizerFromJSON, type Tokenizer } from '../text';
import { loadCheckpoint } from '../checkpoint/language-model';
import { FINISH_CANCELLED } from '../core/constants';
import { startWorker, workerScript } from '../threads/start';
import {
  type EngineInfo,
  type FromWorker,
  type RowRequest,
  type ToWorker,
  type WorkerInput,
} from './protocol';

export interface BatchingOptions {
  /** Most prompts stepped together (default 64); more wait in the queue. */
  maxBatch?: number;
  /** Most prompts waiting for a batch slot (default 1024); beyond it calls get QueueFullError. */
  maxQueue?: number;
  /**
   * Longest a call waits in the queue for its first batch slot, in ms (default 30000); then
   * QueueTimeoutError.
   */
  maxWait?: number;
  /** GEMM threads (native; process-wide) or onnxruntime intra-op threads (default: all cores). */
  threads?: number;
  /**
   * Most batch slots the prompts of one call hold at once (default a quarter of maxBatch, 16 of
   * 64); its other prompts wait for its own rows to finish, and other calls' prompts go ahead of
   * them, so one call never takes the whole batch.
   */
  maxCallRows?: number;
  /**
   * Prompt tokens a row being primed reads in a round while no row generates (default 64): a
   * burst of new requests primes as an in-process batch does.
   */
  primeChunk?: number;
  /**
   * Prompt tokens a row being primed reads in a round beside rows that generate (default 4).
   * Each token past the first holds the generating rows for a recurrent step, so this trades
   * their speed for the priming rows': long prompts are primed in chunks of this size between
   * the other rows' tokens, however long they are.
   */
  sharedChunk?: number;
  /**
   * Prompt tokens the rows of one call read in a round at most, all together (default 1024: a
   * call at maxCallRows primes every row a full primeChunk alone, and shares rounds with others).
   */
  promptBudget?: number;
}

/** The queue cannot take the call's prompts; try again later (HTTP 429). */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** A call waited longer than maxWait for its first batch slot (HTTP 503). */
export class QueueTimeoutError extends Error {
  override name = 'QueueTimeoutError';
}

/** One TokenLoop call: the prompts of a generate call (or the one of a stream). */
interface Call {
  maxTokens: number;
  tokens: Int32Array;
  lengths: Int32Array;
  finish: Int32Array;
  /** Rows not finished yet. */
  open: number;
  /** Its rows in the batch now, and whether any has been. */
  active: number;
  started: boolean;
  /** Names the call's rows to the engine, which shares a round's prompt budget among them. */
  group: number;
  settled: boolean;
  cancel: Int32Array;
  onTokens?: OnTokens;
  resolve: (r: NativeGenerateResult) => void;
  reject: (e: Error) => void;
}

interface Row {
  call: Call;
  /** The row's index in its call. */
  index: number;
  request: RowRequest;
  generated: number;
  queuedAt: number;
}

type Resolved = Required<Omit<BatchingOptions, 'threads'>>;

function resolveOptions(o: BatchingOptions): Resolved {
  const maxBatch = checkInt('maxBatch', o.maxBatch ?? 64, 1, 65536);
  return {
    maxBatch,
    maxQueue: checkInt('maxQueue', o.maxQueue ?? 1024, 0, 1 << 24),
    maxWait: checkInt('maxWait', o.maxWait ?? 30_000, 1, 2 ** 31 - 1),
    maxCallRows: checkInt(
      'maxCallRows',
      o.maxCallRows ?? Math.max(1, Math.floor(maxBatch / 4)),
      1,
      maxBatch,
    ),
    primeChunk: checkInt('primeChunk', o.primeChunk ?? 64, 1, 1 << 20),
    sharedChunk: checkInt('sharedChunk', o.sharedChunk ?? 4, 1, 1 << 20),
    promptBudget: checkInt('promptBudget', o.promptBudget ?? 1024, 1, 1 << 30),
  };
}

/** Starts the engine worker and waits for it to load the model. */
function open(input: WorkerInput, what: string) {
  return startWorker<EngineInfo>(
    workerScript(__filename, 'engine-worker'),
    { workerData: input },
    what,
  );
}

export class BatchingGenerator implements TextGenerator, TokenScorer {
  private readonly options: Resolved;
  private readonly queue: Row[] = [];
  /** Rows in the worker's batch, by row id. */
  private readonly rows = new Map<number, Row>();
  private readonly calls = new Set<Call>();
  /** Score requests sent to the worker, by id. */
  private readonly scoring = new Map<
    number,
    { resolve: (s: TokenScores) => void; reject: (e: Error) => void }
  >();
  private readonly observers = new Set<(batchSize: number) => void>();
  private sweeper: NodeJS.Timeout | null = null;
  private nextRow = 0;
  private nextCall = 0;
  private nextScore = 0;
  private closed: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly tokenizer: Tokenizer,
    private readonly spec: LanguageModelSpec,
    /** What computes the steps. */
    readonly engine: 'native' | 'onnx',
    options: Resolved,
  ) {
    this.options = options;
    // An idle generator does not keep the process alive; one with calls in flight does.
    worker.unref();
    worker.on('message', (m: FromWorker) => this.route(m));
    worker.on('error', (e) => this.fail(new Error(`the engine worker failed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`the engine worker exited (code ${code})`)));
  }

  /** Batches a LanguageModel's generation with the native kernels (the weights are shared). */
  static async fromModel(
    model: LanguageModelNetwork,
    options: BatchingOptions = {},
  ): Promise<BatchingGenerator> {
    if (!model.tokenizer) throw new Error('the model has no tokenizer; text generation needs one');
    const o = resolveOptions(options);
    const { worker } = await open(
      {
        kind: 'native',
        spec: model.spec,
        weights: model.nativeWeights(),
        threads: threadsOption(options),
        primeChunk: o.primeChunk,
        sharedChunk: o.sharedChunk,
        promptBudget: o.promptBudget,
      },
      'the engine worker of a native model',
    );
    return new BatchingGenerator(worker, model.tokenizer, model.spec, 'native', o);
  }

  /** Batches generation from an .onnx file written by exportOnnx, in onnxruntime-node. */
  static async fromOnnx(file: string, options: BatchingOptions = {}): Promise<BatchingGenerator> {
    const o = resolveOptions(options);
    const input: WorkerInput = {
      kind: 'onnx',
      file,
      threads: threadsOption(options),
      primeChunk: o.primeChunk,
      sharedChunk: o.sharedChunk,
      promptBudget: o.promptBudget,
    };
    const { worker, info } = await open(input, `${file}: the engine worker`);
    if (!info.tokenizer) {
      await worker.terminate();
      throw new Error(
        `${file}: the model was exported without a tokenizer, so it cannot turn text into tokens`,
      );
    }
    return new BatchingGenerator(worker, tokenizerFromJSON(info.tokenizer), info.spec, 'onnx', o);
  }

  /** An .onnx file through onnxruntime, anything else as a LanguageModel checkpoint. */
  static async load(file: string, options: BatchingOptions = {}): Promise<BatchingGenerator> {
    if (file.toLowerCase().endsWith('.onnx')) return BatchingGenerator.fromOnnx(file, options);
    return BatchingGenerator.fromModel((await loadCheckpoint(file)).model, options);
  }

  get info(): GeneratorInfo {
    return { backend: 'batching', vocabSize: this.spec.vocabSize, spec: { ...this.spec } };
  }

  /** Prompts waiting for a batch slot, and prompts in the batch. */
  get load(): { queued: number; active: number } {
    return { queued: this.queue.length, active: this.rows.size };
  }

  get limits(): Readonly<Resolved> {
    return this.options;
  }

  /** Calls `listener` with the batch size of every step; returns the unsubscribe function. */
  observe(listener: (batchSize: number) => void): () => void {
    this.observers.add(listener);
    return () => this.observers.delete(listener);
  }

  /**
   * Continues every prompt; the prompts join the shared batch as slots free up. Results equal
   * LanguageModel.generate's for the same options (each prompt keeps its own random stream).
   */
  generate(options: GenerateOptions): Promise<string[]> {
    // One loop call for all prompts: the batch, not the call, decides how many run at once.
    return generateText(this.loop, this.tokenizer, options, 65536);
  }

  /** Continues every prompt as generate does, with the tokens and why each row ended. */
  complete(options: GenerateOptions): Promise<Completion[]> {
    return completeText(this.loop, this.tokenizer, options, 65536);
  }

  /** Streams the continuation of one prompt as text pieces; returns how it ended. */
  stream(options: StreamOptions): AsyncGenerator<string, StreamEnd> {
    return streamText(this.loop, this.tokenizer, options);
  }

  /**
   * Log-probabilities of each token of `tokens` after the first, and the `k` likeliest
   * alternatives at each position (see TokenScores), computed by the engine between two rounds.
   */
  score(tokens: Int32Array, k: number): Promise<TokenScores> {
    if (this.closed) return Promise.reject(this.closed);
    checkScoreInput(tokens, k, this.spec.vocabSize);
    const id = this.nextScore++;
    return new Promise((resolve, reject) => {
      this.scoring.set(id, { resolve, reject });
      this.holdWorker();
      const message: ToWorker = { type: 'score', id, tokens, k };
      this.worker.postMessage(message);
    });
  }

  /** Stops the worker; calls in flight reject, later ones reject at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.fail(new Error('the generator was closed'));
    await this.worker.terminate();
  }

  private readonly loop: TokenLoop = (prompts, options, stops, cancel, onTokens) => {
    if (this.closed) return Promise.reject(this.closed);
    const B = prompts.offsets.length - 1;
    const free = this.options.maxBatch - this.rows.size;
    const waiting = this.queue.length + B - Math.max(0, free);
    if (waiting > this.options.maxQueue) {
      return Promise.reject(
        new QueueFullError(
          `the queue is full: ${this.queue.length} prompts wait for ${this.options.maxBatch} ` +
            `batch slots (maxQueue ${this.options.maxQueue}); this call adds ${B}`,
        ),
      );
    }
    const M = options.maxTokens;
    return new Promise<NativeGenerateResult>((resolve, reject) => {
      const call: Call = {
        maxTokens: M,
        tokens: new Int32Array(B * M).fill(-1),
        lengths: new Int32Array(B),
        finish: new Int32Array(B),
        open: B,
        active: 0,
        started: false,
        group: this.nextCall++,
        settled: false,
        cancel,
        onTokens,
        resolve,
        reject,
      };
      this.calls.add(call);
      this.holdWorker();
      const now = performance.now();
      for (let b = 0; b < B; b++) {
        const request: RowRequest = {
          id: this.nextRow++,
          group: call.group,
          prompt: prompts.tokens.slice(prompts.offsets[b], prompts.offsets[b + 1]),
          options: { ...options, rowOffset: options.rowOffset + b },
          stops,
          cancel,
        };
        this.queue.push({ call, index: b, request, generated: 0, queuedAt: now });
      }
      this.pump();
    });
  };

  /**
   * Sends queued rows to the worker while the batch has free slots, in queue order but passing
   * over the rows of calls that hold maxCallRows slots already.
   */
  private pump(): void {
    let free = this.options.maxBatch - this.rows.size;
    const take: Row[] = [];
    const wait: Row[] = [];
    for (const row of this.queue) {
      const call = row.call;
      if (free > 0 && call.active < this.options.maxCallRows) {
        free--;
        call.active++;
        call.started = true;
        this.rows.set(row.request.id, row);
        take.push(row);
      } else {
        wait.push(row);
      }
    }
    if (take.length > 0) {
      this.queue.splice(0, this.queue.length, ...wait);
      const message: ToWorker = { type: 'add', rows: take.map((r) => r.request) };
      this.worker.postMessage(message);
    }
    // While rows wait, look every so often for cancelled and expired ones.
    if (this.queue.length > 0 && !this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), 20);
    } else if (this.queue.length === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const row of [...this.queue]) {
      if (row.call.settled) this.unqueue(row);
      else if (Atomics.load(row.call.cancel, 0) !== 0) {
        this.unqueue(row);
        this.finishRow(row, 0, FINISH_CANCELLED);
      } else if (!row.call.started && now - row.queuedAt > this.options.maxWait) {
        // Only a call none of whose rows got a slot times out: the others wait on themselves.
        this.settle(
          row.call,
          new QueueTimeoutError(
            `no batch slot came free within maxWait (${this.options.maxWait} ms); try again later`,
          ),
        );
      }
    }
    this.pump();
  }

  private unqueue(row: Row): void {
    const i = this.queue.indexOf(row);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private route(m: FromWorker): void {
    if (m.type === 'step') {
      if (m.rows.length > 0) for (const f of this.observers) f(m.rows.length);
      m.rows.forEach((id, i) => {
        const row = this.rows.get(id);
        if (!row) return;
        const step = row.generated++;
        const call = row.call;
        call.tokens[row.index * call.maxTokens + step] = m.tokens[i];
        if (!call.settled)
          call.onTokens?.(step, Int32Array.of(row.index), m.tokens.subarray(i, i + 1));
      });
      m.done.forEach((id, i) => {
        const row = this.rows.get(id);
        if (!row) return;
        this.leave(row);
        this.finishRow(row, m.lengths[i], m.finish[i]);
      });
    } else if (m.type === 'scored' || m.type === 'score-failed') {
      const pending = this.scoring.get(m.id);
      this.scoring.delete(m.id);
      this.holdWorker();
      if (m.type === 'scored') pending?.resolve(m.scores);
      else pending?.reject(new Error(`scoring failed: ${m.message}`));
    } else if (m.type === 'error') {
      for (const id of m.rows) {
        const row = this.rows.get(id);
        if (!row) continue;
        this.leave(row);
        this.settle(row.call, new Error(m.message));
      }
    }
    this.pump();
  }

  /** The worker keeps the process alive while calls or score requests are in flight. */
  private holdWorker(): void {
    if (this.calls.size + this.scoring.size > 0) this.worker.ref();
    else this.worker.unref();
  }

  /** A row of the batch leaves it, freeing its slot. */
  private leave(row: Row): void {
    this.rows.delete(row.request.id);
    row.call.active--;
  }

  private finishRow(row: Row, length: number, finish: number): void {
    const call = row.call;
    call.lengths[row.index] = length;
    call.finish[row.index] = finish;
    const start = row.index * call.maxTokens;
    call.tokens.fill(-1, start + length, start + call.maxTokens);
    if (--call.open === 0) this.settle(call, null);
  }

  /** Resolves (error null) or rejects a call once; a rejected call's rows leave the batch. */
  private settle(call: Call, error: Error | null): void {
    if (call.settled) return;
    call.settled = true;
    this.calls.delete(call);
    this.holdWorker();
    if (error) {
      Atomics.store(call.cancel, 0, 1);
      for (const row of this.queue.filter((r) => r.call === call)) this.unqueue(row);
      call.reject(error);
    } else {
      call.resolve({ tokens: call.tokens, lengths: call.lengths, finish: call.finish });
    }
  }

  /** Rejects every call in flight and every later one with `error`. */
  private fail(error: Error): void {
    this.closed ??= error;
    for (const call of [...this.calls]) this.settle(call, error);
    for (const pending of this.scoring.values()) pending.reject(error);
    this.scoring.clear();
    this.queue.length = 0;
    this.rows.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

function threadsOption(o: BatchingOptions): number | undefined {
  return o.threads === undefined ? undefined : checkInt('threads', o.threads, 1, 1024);
}
