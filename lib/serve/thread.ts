// What `rnnkit serve` serves (a language model behind a BatchingGenerator, or a
// sequence-to-sequence model itself) and the thread it serves from. The CLI runs the HTTP server
// in a worker thread whose young generation is capped: in a server, objects that live for a
// request keep surviving V8's scavenges, and the survivors make V8 grow the young generation step
// by step up to 48 MiB, which shows as resident memory creeping up over thousands of requests.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { TextGenerator } from '../decode/text-generator';
import { readSafetensors } from '../checkpoint/safetensors';
import { Seq2Seq } from '../models/seq2seq';
import { native } from '../core/native';
import { OnnxSeq2Seq } from '../onnx/seq2seq';
import { seq2seqOnnxPaths } from '../onnx/seq2seq-format';
import type { Translator } from '../decode/translate';
import { startWorker } from '../threads/start';
import { BatchingGenerator } from './batching';
import { startServer } from './http';

export interface ServeConfig {
  /** An .onnx export or a .safetensors checkpoint, of a language or a seq2seq model. */
  file: string;
  port?: number;
  host?: string;
  /** Language models: the BatchingGenerator's limits. */
  maxBatch?: number;
  maxQueue?: number;
  threads: number;
}

export interface Serving {
  url: string;
  /** What computes: 'native' or 'onnx'. */
  engine: string;
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
  const server = await startServer(served.model, { port: c.port, host: c.host }).catch(
    async (error: unknown) => {
      await served.close();
      throw error;
    },
  );
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
  const { worker, info } = await startWorker<{ url: string; engine: string }>(
    path.join(__dirname, 'thread-worker.js'),
    { workerData: c, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } },
    `${c.file}: the serving thread`,
  );
  return {
    ...info,
    close: () =>
      new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        worker.postMessage('close');
      }),
  };
}
