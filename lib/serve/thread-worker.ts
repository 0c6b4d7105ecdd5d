// The serving thread of serveInWorker: loads the model and serves it over HTTP (its start-up),
// then answers the one call it gets by draining the server and releasing the model.
import { workerData } from 'node:worker_threads';

import { serveCalls } from '../threads/protocol';
import { serveHere, type ServeConfig, type ServingInfo } from './thread';

void serveCalls<ServingInfo, object, null>(async () => {
  const serving = await serveHere(workerData as ServeConfig);
  return {
    info: { url: serving.url, engine: serving.engine },
    async handle() {
      await serving.close();
      return { result: null, transfer: [] };
    },
  };
});
