// The serving thread of serveInWorker: serves the model over HTTP until the parent says 'close'.
import { parentPort, workerData } from 'node:worker_threads';

import { serveHere, type ServeConfig, type Serving } from './thread';

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the serving thread must run in a worker thread');
  let serving: Serving;
  try {
    serving = await serveHere(workerData as ServeConfig);
  } catch (error) {
    port.postMessage({ type: 'failed', message: (error as Error).message });
    return;
  }
  port.once('message', () => {
    void serving.close().then(() => port.close());
  });
  port.postMessage({ type: 'ready', info: { url: serving.url, engine: serving.engine } });
}

void main();
