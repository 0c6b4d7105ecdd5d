// The interface every text generator implements (the native LanguageModel, the ONNX generator,
// and the request-batching wrapper), so that a service switches backends by one line.
import type { GenerateOptions, StreamOptions } from './options';
import type { Completion, StreamEnd } from './token-loop';

export interface GeneratorInfo {
  backend: 'native' | 'onnx' | 'batching';
  vocabSize: number;
  /** The model's architecture (LanguageModelSpec) as stored with it. */
  spec: Record<string, unknown>;
}

export interface TextGenerator {
  readonly info: GeneratorInfo;
  /** Continues every prompt; resolves with the generated text (without the prompt). */
  generate(options: GenerateOptions): Promise<string[]>;
  /** Continues every prompt as generate does; resolves with the tokens and finish reasons too. */
  complete(options: GenerateOptions): Promise<Completion[]>;
  /** Streams the continuation of one prompt as text pieces; returns how it ended. */
  stream(options: StreamOptions): AsyncGenerator<string, StreamEnd>;
  /** Releases threads and sessions; the generator is unusable afterwards. */
  close(): Promise<void>;
}
