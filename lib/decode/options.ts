// Sampling options shared by every text generator (native and ONNX): parsed and checked once here.
import { checkInt, checkNumber } from '../core/validate';
import type { Tokenizer } from '../text';

export interface SamplingOptions {
  /** Tokens to generate after the prompt (default 200). */
  maxTokens?: number;
  /** Softmax temperature; 0 is greedy decoding (default 1). */
  temperature?: number;
  /** Keep only the k most likely tokens (0: off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: off). */
  topP?: number;
  /** Divides positive (multiplies negative) logits of tokens already seen (1: off). */
  repetitionPenalty?: number;
  /** Never repeat an n-gram of this size (0: off). */
  noRepeatNgramSize?: number;
  /** Generation ends when any of these strings is produced; it is not included in the result. */
  stop?: string | string[];
  /** Seed for sampling: the same seed, prompt and options give the same text. */
  seed?: number;
  /** What to do with prompt characters that are not in the vocabulary (default 'error'). */
  unknown?: 'error' | 'map';
  signal?: AbortSignal;
}

export interface GenerateOptions extends SamplingOptions {
  prompts: string[];
  /** Largest batch run at once; more prompts are split into batches of this size (default 256). */
  maxBatch?: number;
}

export interface StreamOptions extends SamplingOptions {
  prompt: string;
  /**
   * Sample with the random stream of this row of a generate call (default 0): streaming prompt i
   * of a generate call's prompts gives the text generate gives it.
   */
  row?: number;
}

/** The checked numeric sampling options, as the native sampler takes them. */
export interface SamplerSettings {
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  noRepeatNgramSize: number;
  seed: number;
}

export const MAX_PROMPT_TOKENS = 1_000_000;
export const MAX_NEW_TOKENS = 1_000_000;

export function samplerSettings(o: SamplingOptions, vocabSize: number): SamplerSettings {
  return {
    maxTokens: checkInt('maxTokens', o.maxTokens ?? 200, 1, MAX_NEW_TOKENS),
    temperature: checkNumber('temperature', o.temperature ?? 1, 0, 1e6),
    topK: checkInt('topK', o.topK ?? 0, 0, vocabSize),
    topP: checkNumber('topP', o.topP ?? 1, 1e-9, 1),
    repetitionPenalty: checkNumber('repetitionPenalty', o.repetitionPenalty ?? 1, 1e-6, 1e6),
    noRepeatNgramSize: checkInt('noRepeatNgramSize', o.noRepeatNgramSize ?? 0, 0, 1024),
    seed: checkInt(
      'seed',
      o.seed ?? Math.floor(Math.random() * 2 ** 31),
      0,
      Number.MAX_SAFE_INTEGER,
    ),
  };
}

/** Concatenated token ids and offsets [n+1], as the native loop takes lists of sequences. */
export interface Ragged {
  tokens: Int32Array;
  offsets: Int32Array;
}

export function ragged(seqs: Int32Array[]): Ragged {
  const offsets = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => (offsets[i + 1] = offsets[i] + s.length));
  const tokens = new Int32Array(offsets[seqs.length]);
  seqs.forEach((s, i) => tokens.set(s, offsets[i]));
  return { tokens, offsets };
}

export function stopStrings(stop: string | string[] | undefined): string[] {
  const list = stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
  list.forEach((s, i) => {
    if (typeof s !== 'string' || s.length === 0) {
      throw new RangeError(`stop[${i}] must be a non-empty string, got ${JSON.stringify(s)}`);
    }
  });
  return list;
}

/** Encodes each prompt, naming the prompt in any error. */
export function encodePrompts(
  tokenizer: Tokenizer,
  prompts: unknown,
  unknown: 'error' | 'map' = 'error',
): Int32Array[] {
  if (!Array.isArray(prompts) || prompts.length === 0) {
    throw new RangeError('prompts must be a non-empty array of strings');
  }
  return prompts.map((p, i) => {
    if (typeof p !== 'string')
      throw new TypeError(`prompts[${i}] must be a string, got ${typeof p}`);
    if (p.length === 0) throw new RangeError(`prompts[${i}] is empty; give at least one character`);
    let ids: Int32Array;
    try {
      ids = tokenizer.encode(p, { unknown });
    } catch (error) {
      throw new RangeError(`prompts[${i}]: ${(error as Error).message}`);
    }
    if (ids.length > MAX_PROMPT_TOKENS) {
      throw new RangeError(
        `prompts[${i}] has ${ids.length} tokens, more than the limit of ${MAX_PROMPT_TOKENS}`,
      );
    }
    return ids;
  });
}

/** Stop strings as token sequences; a stop the vocabulary cannot produce is an error. */
export function encodeStops(tokenizer: Tokenizer, stops: string[]): Int32Array[] {
  return stops.map((s, i) => {
    try {
      return tokenizer.encode(s);
    } catch (error) {
      throw new RangeError(`stop[${i}] can never be generated: ${(error as Error).message}`);
    }
  });
}

/** Cuts `text` at the first occurrence of any stop string. */
export function cutAtStop(text: string, stops: string[]): string {
  let end = text.length;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && i < end) end = i;
  }
  return text.slice(0, end);
}
