// Text in, text out around a token loop with native.lmGenerate's contract (prompts and stops as
// token ids, per-row results, a shared cancel flag, per-step token callbacks): options are checked
// and encoded with lib/generate/options.ts, batches are split at maxBatch with the row offsets
// that keep every prompt's random stream independent of the split, and stop strings are cut.
// It holds nothing backend-specific, so the native generator can run on it as well.
import { FINISH_ERROR, FINISH_STOP } from '../core/constants';
import type { NativeGenerateOptions, NativeGenerateResult } from '../core/native';
import { checkInt } from '../core/validate';
import type { Tokenizer } from '../text';
import {
  cutAtStop,
  encodePrompts,
  encodeStops,
  ragged,
  samplerSettings,
  stopStrings,
  type GenerateOptions,
  type Ragged,
  type SamplerSettings,
  type SamplingOptions,
  type StreamOptions,
} from './options';

/** Called after every step with the token sampled by each row (a prompt index) active at its start. */
export type OnTokens = (step: number, rows: Int32Array, tokens: Int32Array) => void;

export type TokenLoop = (
  prompts: Ragged,
  options: NativeGenerateOptions,
  stops: Ragged | null,
  cancel: Int32Array,
  onTokens?: OnTokens,
) => Promise<NativeGenerateResult>;

/** An Int32Array(1) over shared memory that the loop polls; set to 1 by the signal. */
function cancelFlag(signal: AbortSignal | undefined): { flag: Int32Array; release: () => void } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  if (!signal) return { flag, release: () => {} };
  const onAbort = () => Atomics.store(flag, 0, 1);
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  return { flag, release: () => signal.removeEventListener('abort', onAbort) };
}

function abortError(): Error {
  const e = new Error('generation was aborted');
  e.name = 'AbortError';
  return e;
}

/** Throws when a row ended because nothing could be sampled (FINISH_ERROR). */
function checkFinish(result: NativeGenerateResult, firstPrompt: number): void {
  const b = result.finish.indexOf(FINISH_ERROR);
  if (b < 0) return;
  throw new Error(
    `generation failed for prompt ${firstPrompt + b} after ${result.lengths[b]} tokens: ` +
      "every logit was NaN or infinite (the model's weights are not finite?)",
  );
}

interface Prepared {
  stops: string[];
  stopIds: Ragged | null;
  settings: SamplerSettings;
}

function prepare(tokenizer: Tokenizer, o: SamplingOptions): Prepared {
  const stops = stopStrings(o.stop);
  return {
    stops,
    stopIds: stops.length ? ragged(encodeStops(tokenizer, stops)) : null,
    settings: samplerSettings(o, tokenizer.size),
  };
}

/** Why a row ended: a stop string (or sequence) was produced, or it reached maxTokens. */
export type FinishReason = 'stop' | 'length';

/** How a stream ended: why, and the tokens of its prompt and the tokens it generated. */
export interface StreamEnd {
  finish: FinishReason;
  promptTokens: number;
  tokens: number;
}

/** One prompt's continuation with what it was made of. */
export interface Completion {
  /** The generated text, cut before the first stop string. */
  text: string;
  /** The prompt's token ids. */
  promptTokens: Int32Array;
  /** The generated token ids (a matched stop sequence not counted; the text may end sooner). */
  tokens: Int32Array;
  finish: FinishReason;
}

/** Continues every prompt, maxBatch rows per loop call; rows finish independently. */
export async function completeText(
  loop: TokenLoop,
  tokenizer: Tokenizer,
  options: GenerateOptions,
  defaultMaxBatch = 256,
): Promise<Completion[]> {
  const p = prepare(tokenizer, options);
  const prompts = encodePrompts(tokenizer, options.prompts, options.unknown);
  const maxBatch = checkInt('maxBatch', options.maxBatch ?? defaultMaxBatch, 1, 65536);
  const { flag, release } = cancelFlag(options.signal);
  try {
    const out: Completion[] = [];
    for (let start = 0; start < prompts.length; start += maxBatch) {
      const batch = prompts.slice(start, start + maxBatch);
      const r = await loop(ragged(batch), { ...p.settings, rowOffset: start }, p.stopIds, flag);
      if (options.signal?.aborted) throw abortError();
      checkFinish(r, start);
      const n = p.settings.maxTokens;
      batch.forEach((promptTokens, b) => {
        const tokens = r.tokens.slice(b * n, b * n + r.lengths[b]);
        const decoded = tokenizer.decode(tokens);
        const text = cutAtStop(decoded, p.stops);
        const stopped = text.length < decoded.length || r.finish[b] === FINISH_STOP;
        out.push({ text, promptTokens, tokens, finish: stopped ? 'stop' : 'length' });
      });
    }
    return out;
  } finally {
    release();
  }
}

/** Continues every prompt as completeText does; resolves with the texts. */
export async function generateText(
  loop: TokenLoop,
  tokenizer: Tokenizer,
  options: GenerateOptions,
  defaultMaxBatch = 256,
): Promise<string[]> {
  return (await completeText(loop, tokenizer, options, defaultMaxBatch)).map((c) => c.text);
}

/** Length of the longest tail of `text` that is the start of some stop string (and not all of it). */
function stopPrefixTail(text: string, stops: string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length); k > longest; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}

/**
 * Streams the continuation of one prompt as text pieces while the loop runs. Stop strings are
 * matched on the decoded text, so a stop is found however the tokens split it; text that could
 * still turn out to begin a stop string is held back until it cannot, and so is a character whose
 * UTF-8 bytes the tokens have not all given yet. A stop found in the text ends the loop. Returns
 * why the row ended, with its token counts.
 */
export async function* streamText(
  loop: TokenLoop,
  tokenizer: Tokenizer,
  options: StreamOptions,
): AsyncGenerator<string, StreamEnd> {
  const p = prepare(tokenizer, options);
  const [prompt] = encodePrompts(tokenizer, [options.prompt], options.unknown);
  const rowOffset = checkInt('row', options.row ?? 0, 0, 65535);
  const { flag, release } = cancelFlag(options.signal);
  const ids: number[] = [];
  let emitted = '';
  let wake: (() => void) | null = null;
  let done = false;
  let failure: unknown = null;
  let finalLength = -1;
  let finish = -1;
  const job = loop(ragged([prompt]), { ...p.settings, rowOffset }, p.stopIds, flag, (_s, _r, t) => {
    if (t[0] >= 0) ids.push(t[0]);
    wake?.();
  })
    .then((r) => {
      finalLength = r.lengths[0];
      finish = r.finish[0];
      checkFinish(r, 0);
    })
    .catch((e: unknown) => (failure = e))
    .finally(() => {
      done = true;
      wake?.();
    });
  try {
    let stopped = false;
    for (;;) {
      // The loop may end while this generator waits at a yield: what it read as not done must be
      // decoded again before the end.
      const finished = done;
      const upTo = finished ? Math.max(0, finalLength) : ids.length;
      const decoded = tokenizer.decode(ids.slice(0, upTo), { stream: !finished });
      const text = cutAtStop(decoded, p.stops);
      if (text.length < decoded.length && !stopped) {
        stopped = true;
        Atomics.store(flag, 0, 1);
      }
      const ready = finished || stopped ? text.length : text.length - stopPrefixTail(text, p.stops);
      if (ready > emitted.length && text.startsWith(emitted)) {
        const piece = text.slice(emitted.length, ready);
        emitted = text.slice(0, ready);
        yield piece;
      }
      if (finished) break;
      if (done) continue;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    await job;
    if (failure) throw failure;
    if (options.signal?.aborted) throw abortError();
    return {
      finish: stopped || finish === FINISH_STOP ? 'stop' : 'length',
      promptTokens: prompt.length,
      tokens: finalLength,
    };
  } finally {
    Atomics.store(flag, 0, 1);
    release();
  }
}
