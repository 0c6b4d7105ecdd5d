// The one protocol of rnnkit's worker threads (training, ONNX sessions, the serving thread). The
// worker loads what it needs and says 'ready' (with what it loaded) or 'failed' (start.ts); then
// the main side calls it: each call has an id and a shared cancel flag, the worker answers it with
// any number of progress messages and then 'done' (the result) or 'error' (a message). The main
// side (WorkerClient) matches replies to calls and fails every call in flight when the worker
// dies or is closed; the worker side (serveCalls) answers the calls one after another, in the
// order they arrive.
import { parentPort, type Worker, type WorkerOptions } from 'node:worker_threads';

import { startWorker, type FirstReply } from './start';

/** A message for call `id` before its answer (streamed tokens, training progress...). */
export interface CallProgress {
  type: string;
  id: number;
}

/** A call as it travels: the request, its id and its cancel flag (shared memory). */
export type CallMessage<Request> = Request & { id: number; cancel: Int32Array };

export type WorkerReply<Info, Result, P extends CallProgress = never> =
  | FirstReply<Info>
  | { type: 'done'; id: number; result: Result }
  | { type: 'error'; id: number; message: string }
  | P;

interface Pending<Result, P> {
  resolve: (r: Result) => void;
  reject: (e: Error) => void;
  onProgress?: (m: P) => void;
}

export interface CallOptions<P> {
  /** Gets the call's progress messages, in order, before its answer. */
  onProgress?: (m: P) => void;
  /** Aborting sets the call's cancel flag, which the worker polls. */
  signal?: AbortSignal;
  /** The cancel flag to send (Int32Array(1) over shared memory), when the caller has one. */
  cancel?: Int32Array;
}

/** How a WorkerClient names itself in errors and whether an idle worker keeps Node running. */
export interface WorkerNames {
  /** The worker, in errors about its life ("x.onnx: the ONNX worker"). */
  what: string;
  /** Put before a call's error message ("x.onnx: "); default none. */
  prefix?: string;
  /** Keep the process alive while the worker idles (a server's thread); default false. */
  keepAlive?: boolean;
}

/** The main thread's handle on a worker started by `WorkerClient.start`. */
export class WorkerClient<Info, Request, Result, P extends CallProgress = never> {
  private readonly pending = new Map<number, Pending<Result, P>>();
  private nextId = 0;
  private closed: Error | null = null;

  private constructor(
    private readonly names: WorkerNames,
    private readonly worker: Worker,
    /** What the worker opened, from its 'ready' message. */
    readonly info: Info,
  ) {
    // Unless told otherwise, an idle worker does not keep the process alive; one with calls in
    // flight does.
    if (!names.keepAlive) worker.unref();
    worker.on('message', (m: WorkerReply<Info, Result, P>) => this.route(m));
    worker.on('error', (e) => this.fail(new Error(`${names.what} failed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`${names.what} exited (code ${code})`)));
  }

  /**
   * Starts `script` and waits for it to load: rejects with its one error (the worker is then
   * gone) or resolves once it is ready for calls.
   */
  static async start<Info, Request, Result, P extends CallProgress = never>(
    script: string,
    options: WorkerOptions,
    names: WorkerNames,
  ): Promise<WorkerClient<Info, Request, Result, P>> {
    const { worker, info } = await startWorker<Info>(script, options, names.what);
    return new WorkerClient<Info, Request, Result, P>(names, worker, info);
  }

  /** Posts `request` as a call with a fresh id and cancel flag; resolves with its result. */
  call(request: Request, options: CallOptions<P> = {}): Promise<Result> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    const { signal, onProgress } = options;
    const cancel = options.cancel ?? new Int32Array(new SharedArrayBuffer(4));
    const onAbort = () => Atomics.store(cancel, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    return new Promise<Result>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject, onProgress });
      const message: CallMessage<Request> = { ...request, id, cancel };
      this.worker.postMessage(message);
    }).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  /** Stops the worker; calls in flight reject with "`what` was closed", later ones at once. */
  async close(what: string): Promise<void> {
    if (this.closed) return;
    this.fail(new Error(`${what} was closed`));
    await this.worker.terminate();
  }

  private route(m: WorkerReply<Info, Result, P>): void {
    // Progress types are the caller's, so the union does not narrow on `type`: read it plainly.
    const { type, id } = m as { type: string; id?: number };
    const p = id === undefined ? undefined : this.pending.get(id);
    if (id === undefined || !p) return;
    if (type !== 'done' && type !== 'error') {
      p.onProgress?.(m as P);
      return;
    }
    this.pending.delete(id);
    if (this.pending.size === 0 && !this.names.keepAlive) this.worker.unref();
    if (type === 'done') p.resolve((m as { result: Result }).result);
    else p.reject(new Error(`${this.names.prefix ?? ''}${(m as { message: string }).message}`));
  }

  /** Rejects every call in flight and every later one with `error`. */
  private fail(error: Error): void {
    this.closed ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** What a worker's `open` returns: its description, and how it answers one call. */
export interface CallHandler<Info, Request, Result, P extends CallProgress> {
  info: Info;
  /**
   * The result and the buffers to transfer with it; `progress` posts messages before it, and
   * `cancelled` says whether the caller has cancelled the call.
   */
  handle(
    request: CallMessage<Request>,
    progress: (m: P) => void,
    cancelled: () => boolean,
  ): Promise<{ result: Result; transfer: ArrayBuffer[] }>;
}

/**
 * The worker side: runs `open` (its error is the load's one error), says 'ready', then answers
 * each call in turn with 'done' or 'error'.
 */
export async function serveCalls<Info, Request, Result, P extends CallProgress = never>(
  open: () => Promise<CallHandler<Info, Request, Result, P>>,
): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('serveCalls must run in a worker thread');
  const post = (reply: WorkerReply<Info, Result, P>, transfer: ArrayBuffer[] = []) =>
    port.postMessage(reply, transfer);
  let handler: CallHandler<Info, Request, Result, P>;
  try {
    handler = await open();
  } catch (error) {
    post({ type: 'failed', message: (error as Error).message });
    return;
  }
  let queue = Promise.resolve();
  port.on('message', (r: CallMessage<Request>) => {
    const cancelled = () => Atomics.load(r.cancel, 0) === 1;
    queue = queue.then(async () => {
      try {
        const { result, transfer } = await handler.handle(r, (m) => post(m), cancelled);
        post({ type: 'done', id: r.id, result }, transfer);
      } catch (error) {
        post({ type: 'error', id: r.id, message: (error as Error).message });
      }
    });
  });
  post({ type: 'ready', info: handler.info });
}
