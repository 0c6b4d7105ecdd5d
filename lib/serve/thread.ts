// What `rnnkit serve` serves (a language model behind a BatchingGenerator, or a
// sequence-to-sequence model itself) and the thread it serves from. The CLI runs the HTTP server
// in a worker thread whose young generation is capped: in a server, objects that live for a
// request keep surviving V8's scavenges, and the survivors make V8 grow the young generation step
// by step up to 48 MiB, which shows as resident memory creeping up over thousands of requests.
import * as fs from 'node:fs';

import type { TextGenerator } from '../decode/text-generator';
import { readSafetensors } from '../checkpoint/safetensors';
import { Seq2Seq } from '../api/seq2seq';
import { native } from '../core/native';
import { OnnxSeq2Seq } from '../onnx/seq2seq';
import { seq2seqOnnxPaths } from '../onnx/seq2seq-format';
import type { Translator } from '../decode/translate';
import { WorkerClient } from '../threads/protocol';
import { workerScript } from '../threads/start';
import type { AccessOptions } from './access';
import { BatchingGenerator } from './batching';
import { startServer } from './http';

export interface ServeConfig extends AccessOptions {
  /** An .onnx export or a .safetensors checkpoint, of a language or a seq2seq model. */
  file: string;
  port?: number;
  host?: string;
  /** The model's name in the OpenAI API (default 'rnnkit'). */
  modelName?: string;
  /** Serve the playground page at GET / (default true). */
  playground?: boolean;
  /** startServer's timeouts, ms. */
  requestTimeout?: number;
  shutdownTimeout?: number;
  /** Language models: the BatchingGenerator's limits. */
  maxBatch?: number;
  maxQueue?: number;
  threads: number;
}

/** Where a server listens and what computes: 'native' or 'onnx'. */
export interface ServingInfo {
  url: string;
  engine: string;
}

export interface Serving extends ServingInfo {
  /** Drains the server (requests in flight finish) and releases the model. */
  close(): Promise<void>;
}

/** The serving thread's young generation, MiB: the survivors of a few hundred requests. */
const YOUNG_GENERATION_MB = 6;

/** Whether `file` holds a sequence-to-sequence model (an X.onnx pair or a seq2seq checkpoint). */
async function isSeq2Seq(file: string): Promise<boolean> {
  if (/\.(encoder|decoder)\.onnx$/.test(file)) return true;
  if (file.endsWith('.onnx')) {
    return !fs.existsSync(file) && fs.existsSync(seq2seqOnnxPaths(file).encoder);
  }
  return (await readSafetensors(file)).metadata.kind === 'seq2seq';
}

async function servedModel(
  c: ServeConfig,
): Promise<{ model: TextGenerator | Translator; engine: string; close(): Promise<void> }> {
  if (!(await isSeq2Seq(c.file))) {
    const generator = await BatchingGenerator.load(c.file, {
      maxBatch: c.maxBatch,
      maxQueue: c.maxQueue,
      threads: c.threads,
    });
    return { model: generator, engine: generator.engine, close: () => generator.close() };
  }
  if (c.file.endsWith('.onnx')) {
    const model = await OnnxSeq2Seq.load(c.file, { threads: c.threads });
    return { model, engine: 'onnx', close: () => model.close() };
  }
  native.setThreads(c.threads);
  return { model: await Seq2Seq.load(c.file), engine: 'native', close: async () => {} };
}

/** Loads the model and serves it over HTTP from this thread. */
export async function serveHere(c: ServeConfig): Promise<Serving> {
  const served = await servedModel(c);
  const server = await startServer(served.model, {
    port: c.port,
    host: c.host,
    apiKeys: c.apiKeys,
    corsOrigins: c.corsOrigins,
    metricsNeedKey: c.metricsNeedKey,
    modelName: c.modelName,
    playground: c.playground,
    requestTimeout: c.requestTimeout,
    shutdownTimeout: c.shutdownTimeout,
  }).catch(async (error: unknown) => {
    await served.close();
    throw error;
  });
  return {
    url: server.url,
    engine: served.engine,
    close: async () => {
      await server.close();
      await served.close();
    },
  };
}

/** Serves as serveHere does, from a worker thread with a small young generation. */
export async function serveInWorker(c: ServeConfig): Promise<Serving> {
  const what = `${c.file}: the serving thread`;
  const worker = await WorkerClient.start<ServingInfo, object, null>(
    workerScript(__filename, 'thread-worker'),
    { workerData: c, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } },
    // The server's thread keeps the process alive while it waits for requests.
    { what, keepAlive: true },
  );
  return {
    ...worker.info,
    // One call drains the server and releases the model; then the thread goes.
    close: async () => {
      await worker.call({});
      await worker.close(what);
    },
  };
}
