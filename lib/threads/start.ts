// Starting a worker thread that loads something before it can work: its first message says
// whether it is ready (with what it loaded) or the one error that kept it from loading.
import { Worker, type WorkerOptions } from 'node:worker_threads';

export type FirstReply<Info> = { type: 'ready'; info: Info } | { type: 'failed'; message: string };

/**
 * Starts `script` and waits for its first message: resolves with the worker and the info of its
 * 'ready', or rejects with its 'failed' message, its error or its exit (the worker is then gone).
 * `what` names the worker in errors. Only the listeners added here are removed afterwards: Worker
 * has internal ones that removeAllListeners() would take too, after which no message arrives.
 */
export async function startWorker<Info>(
  script: string,
  options: WorkerOptions,
  what: string,
): Promise<{ worker: Worker; info: Info }> {
  const worker = new Worker(script, options);
  try {
    const info = await new Promise<Info>((resolve, reject) => {
      const settle = (error: Error | null, info?: Info) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (error) reject(error);
        else resolve(info as Info);
      };
      const onMessage = (m: FirstReply<Info>) =>
        m.type === 'ready'
          ? settle(null, m.info)
          : settle(
              new Error(m.type === 'failed' ? m.message : `${what}: unexpected first message`),
            );
      const onError = (e: Error) => settle(new Error(`${what} failed: ${e.message}`));
      const onExit = (code: number) =>
        settle(new Error(`${what} exited while loading (code ${code})`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return { worker, info };
  } catch (error) {
    await worker.terminate();
    throw error;
  }
}
