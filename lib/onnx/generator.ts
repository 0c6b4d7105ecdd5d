// OnnxGenerator: text generation from an rnnkit .onnx file through onnxruntime-node, with the
// options and results of the native LanguageModel. The session and the token loop live in a
// worker thread (onnxruntime's run() blocks its thread); this side encodes, routes and decodes.
import * as path from 'node:path';

import type { GenerateOptions, StreamOptions } from '../decode/options';
import type { GeneratorInfo, TextGenerator } from '../decode/text-generator';
import type { NativeGenerateResult } from '../core/native';
import { checkInt } from '../nn/parameter';
import { tokenizerFromJSON, type Tokenizer } from '../text';
import type { OnnxModelInfo } from './format';
import { generateText, streamText, type TokenLoop } from '../decode/token-loop';
import type { GenerateRequest, TokensReply, WorkerInput } from './worker';
import { OnnxWorker } from '../threads/protocol';

export interface OnnxGeneratorOptions {
  /** onnxruntime intra-op threads (default: onnxruntime's choice, the machine's cores). */
  threads?: number;
  /** Default largest batch per run; generate's own maxBatch overrides it (default 256). */
  maxBatch?: number;
}

type Worker = OnnxWorker<OnnxModelInfo, GenerateRequest, NativeGenerateResult, TokensReply>;

export class OnnxGenerator implements TextGenerator {
  /** The file the generator was loaded from. */
  readonly file: string;
  /** What the file holds: kind, spec, tokenizer, rnnkit version, opset. */
  readonly model: OnnxModelInfo;
  readonly tokenizer: Tokenizer;
  private readonly worker: Worker;
  private readonly maxBatch: number;

  private constructor(worker: Worker, tokenizer: Tokenizer, maxBatch: number) {
    this.file = worker.file;
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
    const input: WorkerInput = { file, threads };
    const worker: Worker = await OnnxWorker.start(path.join(__dirname, 'worker.js'), input, file);
    try {
      if (!worker.info.tokenizer) {
        throw new Error(
          `${file}: the model was exported without a tokenizer, so it cannot turn text into ` +
            'tokens; export a model that has one',
        );
      }
      return new OnnxGenerator(worker, tokenizerFromJSON(worker.info.tokenizer), maxBatch);
    } catch (error) {
      await worker.close('generator');
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
  close(): Promise<void> {
    return this.worker.close('generator');
  }

  private readonly loop: TokenLoop = (prompts, options, stops, cancel, onTokens) =>
    this.worker.call({ prompts, options, stops, cancel, stream: onTokens !== undefined }, (m) =>
      onTokens?.(m.step, m.rows, m.tokens),
    );
}
