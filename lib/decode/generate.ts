// Text generation with a LanguageModel: the token loop (priming, recurrent step, logits, sampling,
// stop checks) runs natively, one call per batch, off the event loop; token-loop.ts turns text
// options into that call and its results back into text.
import type { LanguageModelNetwork } from '../models/language-model';
import { native } from '../core/native';
import type { Tokenizer } from '../text';
import type { GenerateOptions, StreamOptions } from './options';
import {
  completeText,
  generateText,
  streamText,
  type Completion,
  type StreamEnd,
  type TokenLoop,
} from './token-loop';

function needTokenizer(model: LanguageModelNetwork): Tokenizer {
  if (!model.tokenizer) throw new Error('the model has no tokenizer; text generation needs one');
  return model.tokenizer;
}

function nativeLoop(model: LanguageModelNetwork): TokenLoop {
  return (prompts, options, stops, cancel, onTokens) =>
    model.reading(() =>
      native.lmGenerateAsync(model.nativeModel(), prompts, options, stops, cancel, onTokens),
    );
}

/**
 * Generates a continuation of every prompt. All prompts run as one native batch (split above
 * maxBatch); rows finish independently at a stop string or maxTokens.
 */
export async function generate(
  model: LanguageModelNetwork,
  options: GenerateOptions,
): Promise<string[]> {
  return generateText(nativeLoop(model), needTokenizer(model), options);
}

/** Continues every prompt as generate does, with the tokens and why each row ended. */
export function complete(
  model: LanguageModelNetwork,
  options: GenerateOptions,
): Promise<Completion[]> {
  return completeText(nativeLoop(model), needTokenizer(model), options);
}

/** Streams the continuation of one prompt as text pieces while the native loop runs. */
export function stream(
  model: LanguageModelNetwork,
  options: StreamOptions,
): AsyncGenerator<string, StreamEnd> {
  return streamText(nativeLoop(model), needTokenizer(model), options);
}
