// Text generation with a LanguageModel: the token loop (priming, recurrent step, logits, sampling,
// stop checks) runs natively, one call per batch, off the event loop; token-loop.ts turns text
// options into that call and its results back into text.
import type { LanguageModel } from '../models/language-model';
import { native } from '../core/native';
import type { Tokenizer } from '../text';
import type { GenerateOptions, StreamOptions } from './options';
import { generateText, streamText, type TokenLoop } from './token-loop';

function needTokenizer(model: LanguageModel): Tokenizer {
  if (!model.tokenizer) throw new Error('the model has no tokenizer; text generation needs one');
  return model.tokenizer;
}

function nativeLoop(model: LanguageModel): TokenLoop {
  return (prompts, options, stops, cancel, onTokens) =>
    native.lmGenerate(model.nativeWeights(), prompts, options, stops, cancel, onTokens);
}

/**
 * Generates a continuation of every prompt. All prompts run as one native batch (split above
 * maxBatch); rows finish independently at a stop string or maxTokens.
 */
export async function generate(model: LanguageModel, options: GenerateOptions): Promise<string[]> {
  return generateText(nativeLoop(model), needTokenizer(model), options);
}

/** Streams the continuation of one prompt as text pieces while the native loop runs. */
export function stream(model: LanguageModel, options: StreamOptions): AsyncGenerator<string> {
  return streamText(nativeLoop(model), needTokenizer(model), options);
}
