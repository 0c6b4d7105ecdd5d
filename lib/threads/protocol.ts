// Worker threads that own onnxruntime sessions, whose run() blocks the thread that calls it. The
// main side (OnnxWorker) does the load handshake, matches each call to its replies by id and
// fails every call in flight when the worker dies or is closed; the worker side (serveCalls)
// answers the calls one after another, in the order they arrive.
import { parentPort, type Worker } from 'node:worker_threads';

import { startWorker, type FirstReply } from './start';

/** A message for call `id` before its answer (streamed tokens, say). */
export interface Progress {
  type: string;
  id: number;
}

export type WorkerReply<Info, Result, P extends Progress = never> =
  | FirstReply<Info>
  | { type: 'done'; id: number; result: Result }
  | { type: 'error'; id: number; message: string }
  | P;

interface Pending<Result, P> {
  resolve: (r: Result) => void;
  reject: (e: Error) => void;
  onProgress?: (m: P) => void;
}

/** The main thread's handle on a worker started by `OnnxWorker.start`. */
export class OnnxWorker<Info, Request, Result, P extends Progress = never> {
  private readonly pending = new Map<number, Pending<Result, P>>();
  private nextId = 0;
  private closed: Error | null = null;

  private constructor(
    /** The file named in every error. */
    readonly file: string,
    private readonly worker: Worker,
    /** What the worker opened, from its 'ready' message. */
    readonly info: Info,
  ) {
    // An idle worker does not keep the process alive; one with calls in flight does.
    worker.unref();
    worker.on('message', (m: WorkerReply<Info, Result, P>) => this.route(m));
    worker.on('error', (e) =>
      this.fail(new Error(`${file}: the ONNX worker failed: ${e.message}`)),
    );
    worker.on('exit', (code) =>
      this.fail(new Error(`${file}: the ONNX worker exited (code ${code})`)),
    );
  }

  /**
   * Starts `script` with `workerData` and waits for it to open `file`: rejects with its one error
   * (the worker is then gone) or resolves once it is ready for calls.
   */
  static async start<Info, Request, Result, P extends Progress = never>(
    script: string,
    workerData: unknown,
    file: string,
  ): Promise<OnnxWorker<Info, Request, Result, P>> {
    const { worker, info } = await startWorker<Info>(
      script,
      { workerData },
      `${file}: the ONNX worker`,
    );
    return new OnnxWorker<Info, Request, Result, P>(file, worker, info);
  }

  /** Posts `request` (with a fresh `id`); `onProgress` gets the call's messages before its answer. */
  call(request: Request, onProgress?: (m: P) => void): Promise<Result> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...request, id });
    });
  }

  /** Stops the worker; calls in flight reject, later ones reject at once. */
  async close(what: string): Promise<void> {
    if (this.closed) return;
    this.fail(new Error(`${this.file}: the ${what} was closed`));
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
    if (this.pending.size === 0) this.worker.unref();
    if (type === 'done') p.resolve((m as { result: Result }).result);
    else p.reject(new Error(`${this.file}: ${(m as { message: string }).message}`));
  }

  /** Rejects every call in flight and every later one with `error`. */
  private fail(error: Error): void {
    this.closed ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** What a worker's `open` returns: its description, and how it answers one call. */
export interface CallHandler<Info, Request, Result, P extends Progress> {
  info: Info;
  /** The result and the buffers to transfer with it; `progress` posts messages before it. */
  handle(
    request: Request & { id: number },
    progress: (m: P) => void,
  ): Promise<{ result: Result; transfer: ArrayBuffer[] }>;
}

/**
 * The worker side: runs `open` (its error is the load's one error), says 'ready', then answers
 * each call in turn with 'done' or 'error'.
 */
export async function serveCalls<Info, Request, Result, P extends Progress = never>(
  open: () => Promise<CallHandler<Info, Request, Result, P>>,
): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('an ONNX worker must run in a worker thread');
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
  port.on('message', (r: Request & { id: number }) => {
    queue = queue.then(async () => {
      try {
        const { result, transfer } = await handler.handle(r, (m) => post(m));
        post({ type: 'done', id: r.id, result }, transfer);
      } catch (error) {
        post({ type: 'error', id: r.id, message: (error as Error).message });
      }
    });
  });
  post({ type: 'ready', info: handler.info });
}
