// OnnxGenerator: text generation from an rnnkit .onnx file through onnxruntime-node, with the
// options and results of the native LanguageModel. The session and the token loop live in a
// worker thread (onnxruntime's run() blocks its thread); this side encodes, routes and decodes.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import type { GenerateOptions, StreamOptions } from '../generate/options';
import type { GeneratorInfo, TextGenerator } from '../generate/text-generator';
import type { NativeGenerateResult } from '../native';
import { checkInt } from '../nn/parameter';
import { tokenizerFromJSON, type Tokenizer } from '../text';
import type { OnnxModelInfo } from './format';
import { generateText, streamText, type OnTokens, type TokenLoop } from '../generate/token-loop';
import type { GenerateRequest, WorkerInput, WorkerReply } from './worker';

export interface OnnxGeneratorOptions {
  /** onnxruntime intra-op threads (default: onnxruntime's choice, the machine's cores). */
  threads?: number;
  /** Default largest batch per run; generate's own maxBatch overrides it (default 256). */
  maxBatch?: number;
}

interface Pending {
  resolve: (r: NativeGenerateResult) => void;
  reject: (e: Error) => void;
  onTokens?: OnTokens;
}

/**
 * The worker's answer to loading: the model's description, or its one error. Only the listeners
 * added here are removed afterwards; Worker has internal ones that removeAllListeners() would take
 * too, after which no message would arrive.
 */
function firstReply(worker: Worker, file: string): Promise<OnnxModelInfo> {
  return new Promise((resolve, reject) => {
    const settle = (error: Error | null, info?: OnnxModelInfo) => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (error) reject(error);
      else resolve(info as OnnxModelInfo);
    };
    const onMessage = (m: WorkerReply) =>
      m.type === 'ready'
        ? settle(null, m.info)
        : settle(new Error(m.type === 'failed' ? m.message : `${file}: unexpected '${m.type}'`));
    const onError = (e: Error) =>
      settle(new Error(`${file}: the ONNX worker failed: ${e.message}`));
    const onExit = (code: number) =>
      settle(new Error(`${file}: the ONNX worker exited while loading (code ${code})`));
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

export class OnnxGenerator implements TextGenerator {
  /** The file the generator was loaded from. */
  readonly file: string;
  /** What the file holds: kind, spec, tokenizer, rnnkit version, opset. */
  readonly model: OnnxModelInfo;
  readonly tokenizer: Tokenizer;
  private readonly worker: Worker;
  private readonly maxBatch: number;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed: Error | null = null;

  private constructor(
    file: string,
    worker: Worker,
    model: OnnxModelInfo,
    tokenizer: Tokenizer,
    maxBatch: number,
  ) {
    this.file = file;
    this.worker = worker;
    this.model = model;
    this.tokenizer = tokenizer;
    this.maxBatch = maxBatch;
    // An idle generator does not keep the process alive; one with calls in flight does.
    worker.unref();
    worker.on('message', (m: WorkerReply) => this.route(m));
    worker.on('error', (e) =>
      this.fail(new Error(`${file}: the ONNX worker failed: ${e.message}`)),
    );
    worker.on('exit', (code) =>
      this.fail(new Error(`${file}: the ONNX worker exited (code ${code})`)),
    );
  }

  /**
   * Loads an .onnx file written by exportOnnx (kind 'step' or 'sequence'). Rejects with one Error
   * naming the file when it cannot be read, is not ONNX, is not an rnnkit language model with a
   * tokenizer, or its inputs, outputs or state shapes disagree with the model in its metadata.
   */
  static async load(file: string, options: OnnxGeneratorOptions = {}): Promise<OnnxGenerator> {
    if (typeof file !== 'string' || file.length === 0) {
      throw new TypeError('OnnxGenerator.load: file must be a non-empty path');
    }
    const threads =
      options.threads === undefined ? undefined : checkInt('threads', options.threads, 1, 1024);
    const maxBatch = checkInt('maxBatch', options.maxBatch ?? 256, 1, 65536);
    const input: WorkerInput = { file, threads };
    const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: input });
    const model = await firstReply(worker, file).catch(async (error: unknown) => {
      await worker.terminate();
      throw error;
    });
    try {
      if (!model.tokenizer) {
        throw new Error(
          `${file}: the model was exported without a tokenizer, so it cannot turn text into ` +
            'tokens; export a model that has one',
        );
      }
      return new OnnxGenerator(file, worker, model, tokenizerFromJSON(model.tokenizer), maxBatch);
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  get info(): GeneratorInfo {
    return { backend: 'onnx', vocabSize: this.model.spec.vocabSize, spec: { ...this.model.spec } };
  }

  /** Continues every prompt; see GenerateOptions. Same results as LanguageModel.generate. */
  generate(options: GenerateOptions): Promise<string[]> {
    return generateText(this.loop, this.tokenizer, options, this.maxBatch);
  }

  /** Streams the continuation of one prompt as text pieces. */
  stream(options: StreamOptions): AsyncGenerator<string> {
    return streamText(this.loop, this.tokenizer, options);
  }

  /** Stops the worker; calls in flight reject, later ones reject at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.fail(new Error(`${this.file}: the generator was closed`));
    await this.worker.terminate();
  }

  private readonly loop: TokenLoop = (prompts, options, stops, cancel, onTokens) => {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    const request: GenerateRequest = {
      id,
      prompts,
      options,
      stops,
      cancel,
      stream: onTokens !== undefined,
    };
    return new Promise<NativeGenerateResult>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject, onTokens });
      this.worker.postMessage(request);
    });
  };

  private route(m: WorkerReply): void {
    if (m.type === 'ready' || m.type === 'failed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'tokens') {
      p.onTokens?.(m.step, m.rows, m.tokens);
      return;
    }
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    if (m.type === 'done') p.resolve(m.result);
    else p.reject(new Error(`${this.file}: ${m.message}`));
  }

  /** Rejects every call in flight and every later one with `error`. */
  private fail(error: Error): void {
    this.closed ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}
