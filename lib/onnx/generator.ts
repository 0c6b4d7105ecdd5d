// OnnxGenerator: text generation from an rnnkit .onnx file through onnxruntime-node, with the
// options and results of the native LanguageModel. The session and the token loop live in a
// worker thread (onnxruntime's run() blocks its thread); this side encodes, routes and decodes.
import type { GenerateOptions, StreamOptions } from '../decode/options';
import type { GeneratorInfo, TextGenerator } from '../decode/text-generator';
import type { NativeGenerateResult } from '../core/native';
import { checkInt } from '../core/validate';
import { tokenizerFromJSON, type Tokenizer } from '../text';
import type { OnnxModelInfo } from './format';
import {
  completeText,
  generateText,
  streamText,
  type Completion,
  type StreamEnd,
  type TokenLoop,
} from '../decode/token-loop';
import type { GenerateRequest, TokensReply, OnnxGeneratorInput } from './worker';
import { WorkerClient } from '../threads/protocol';
import { workerScript } from '../threads/start';

export interface OnnxGeneratorOptions {
  /** onnxruntime intra-op threads (default: onnxruntime's choice, the machine's cores). */
  threads?: number;
  /** Default largest batch per run; generate's own maxBatch overrides it (default 256). */
  maxBatch?: number;
}

type Worker = WorkerClient<OnnxModelInfo, GenerateRequest, NativeGenerateResult, TokensReply>;

export class OnnxGenerator implements TextGenerator {
  /** The file the generator was loaded from. */
  readonly file: string;
  /** What the file holds: kind, spec, tokenizer, rnnkit version, opset. */
  readonly model: OnnxModelInfo;
  readonly tokenizer: Tokenizer;
  private readonly worker: Worker;
  private readonly maxBatch: number;

  private constructor(file: string, worker: Worker, tokenizer: Tokenizer, maxBatch: number) {
    this.file = file;
    this.worker = worker;
    this.model = worker.info;
    this.tokenizer = tokenizer;
    this.maxBatch = maxBatch;
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
    const input: OnnxGeneratorInput = { file, threads };
    const worker: Worker = await WorkerClient.start(
      workerScript(__filename, 'worker'),
      { workerData: input },
      { what: `${file}: the ONNX worker`, prefix: `${file}: ` },
    );
    try {
      if (!worker.info.tokenizer) {
        throw new Error(
          `${file}: the model was exported without a tokenizer, so it cannot turn text into ` +
            'tokens; export a model that has one',
        );
      }
      return new OnnxGenerator(file, worker, tokenizerFromJSON(worker.info.tokenizer), maxBatch);
    } catch (error) {
      await worker.close(`${file}: the generator`);
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

  /** Continues every prompt as generate does, with the tokens and why each row ended. */
  complete(options: GenerateOptions): Promise<Completion[]> {
    return completeText(this.loop, this.tokenizer, options, this.maxBatch);
  }

  /** Streams the continuation of one prompt as text pieces; returns how it ended. */
  stream(options: StreamOptions): AsyncGenerator<string, StreamEnd> {
    return streamText(this.loop, this.tokenizer, options);
  }

  /** Stops the worker; calls in flight reject, later ones reject at once. */
  close(): Promise<void> {
    return this.worker.close(`${this.file}: the generator`);
  }

  private readonly loop: TokenLoop = (prompts, options, stops, cancel, onTokens) =>
    this.worker.call(
      { prompts, options, stops, stream: onTokens !== undefined },
      { cancel, onProgress: (m) => onTokens?.(m.step, m.rows, m.tokens) },
    );
}
