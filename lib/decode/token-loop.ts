// Text in, text out around a token loop with native.lmGenerate's contract (prompts and stops as
// token ids, per-row results, a shared cancel flag, per-step token callbacks): options are checked
// and encoded with lib/generate/options.ts, batches are split at maxBatch with the row offsets
// that keep every prompt's random stream independent of the split, and stop strings are cut.
// It holds nothing backend-specific, so the native generator can run on it as well.
import type { NativeGenerateOptions, NativeGenerateResult } from '../core/native';
import { checkInt } from '../nn/parameter';
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

/** Continues every prompt, maxBatch rows per loop call; rows finish independently. */
export async function generateText(
  loop: TokenLoop,
  tokenizer: Tokenizer,
  options: GenerateOptions,
  defaultMaxBatch = 256,
): Promise<string[]> {
  const p = prepare(tokenizer, options);
  const prompts = encodePrompts(tokenizer, options.prompts, options.unknown);
  const maxBatch = checkInt('maxBatch', options.maxBatch ?? defaultMaxBatch, 1, 65536);
  const { flag, release } = cancelFlag(options.signal);
  try {
    const out: string[] = [];
    for (let start = 0; start < prompts.length; start += maxBatch) {
      const batch = prompts.slice(start, start + maxBatch);
      const r = await loop(ragged(batch), { ...p.settings, rowOffset: start }, p.stopIds, flag);
      if (options.signal?.aborted) throw abortError();
      const n = p.settings.maxTokens;
      for (let b = 0; b < batch.length; b++) {
        const ids = r.tokens.subarray(b * n, b * n + r.lengths[b]);
        out.push(cutAtStop(tokenizer.decode(ids), p.stops));
      }
    }
    return out;
  } finally {
    release();
  }
}

/**
 * Streams the continuation of one prompt as text pieces while the loop runs. Tokens that could
 * still turn out to begin a stop string are held back until they cannot.
 */
export async function* streamText(
  loop: TokenLoop,
  tokenizer: Tokenizer,
  options: StreamOptions,
): AsyncGenerator<string> {
  const p = prepare(tokenizer, options);
  const [prompt] = encodePrompts(tokenizer, [options.prompt], options.unknown);
  const ends = p.stopIds?.offsets ?? new Int32Array(1);
  const holdback = Math.max(0, ...Array.from(ends.subarray(1), (end, i) => end - ends[i]));
  const { flag, release } = cancelFlag(options.signal);
  const ids: number[] = [];
  let emitted = '';
  let wake: (() => void) | null = null;
  let done = false;
  let failure: unknown = null;
  let finalLength = -1;
  const job = loop(
    ragged([prompt]),
    { ...p.settings, rowOffset: 0 },
    p.stopIds,
    flag,
    (_s, _r, t) => {
      ids.push(...t);
      wake?.();
    },
  )
    .then((r) => (finalLength = r.lengths[0]))
    .catch((e: unknown) => (failure = e))
    .finally(() => {
      done = true;
      wake?.();
    });
  try {
    for (;;) {
      const ready = done ? finalLength : ids.length - Math.max(0, holdback - 1);
      const text = cutAtStop(tokenizer.decode(ids.slice(0, Math.max(0, ready))), p.stops);
      if (text.length > emitted.length && text.startsWith(emitted)) {
        const piece = text.slice(emitted.length);
        emitted = text;
        yield piece;
      }
      if (done) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    await job;
    if (failure) throw failure;
    if (options.signal?.aborted) throw abortError();
  } finally {
    Atomics.store(flag, 0, 1);
    release();
  }
}
