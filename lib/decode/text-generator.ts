// The interface every text generator implements (the native LanguageModel, the ONNX generator,
// and the request-batching wrapper), so that a service switches backends by one line.
import type { GenerateOptions, StreamOptions } from './options';

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
  /** Streams the continuation of one prompt as text pieces. */
  stream(options: StreamOptions): AsyncGenerator<string>;
  /** Releases threads and sessions; the generator is unusable afterwards. */
  close(): Promise<void>;
}
