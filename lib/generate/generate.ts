// Text generation with a LanguageModel: the token loop (priming, recurrent step, logits, sampling,
// stop checks) runs natively, one call per batch, off the event loop.
import type { LanguageModel } from '../models/language-model';
import { native, type NativeRagged } from '../native';
import type { Tokenizer } from '../text';
import {
  cutAtStop,
  encodePrompts,
  encodeStops,
  ragged,
  samplerSettings,
  stopStrings,
  type GenerateOptions,
  type SamplingOptions,
  type StreamOptions,
} from './options';
import { checkInt } from '../nn/parameter';

function needTokenizer(model: LanguageModel): Tokenizer {
  if (!model.tokenizer) throw new Error('the model has no tokenizer; text generation needs one');
  return model.tokenizer;
}

/** An Int32Array(1) over shared memory that the native loop polls; set to 1 by the signal. */
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
  tokenizer: Tokenizer;
  stops: string[];
  stopIds: NativeRagged | null;
  settings: ReturnType<typeof samplerSettings>;
}

function prepare(model: LanguageModel, o: SamplingOptions): Prepared {
  const tokenizer = needTokenizer(model);
  const stops = stopStrings(o.stop);
  const settings = samplerSettings(o, model.spec.vocabSize);
  return {
    tokenizer,
    stops,
    stopIds: stops.length ? ragged(encodeStops(tokenizer, stops)) : null,
    settings,
  };
}

/**
 * Generates a continuation of every prompt. All prompts run as one native batch (split above
 * maxBatch); rows finish independently at a stop string or maxTokens.
 */
export async function generate(model: LanguageModel, options: GenerateOptions): Promise<string[]> {
  const p = prepare(model, options);
  const prompts = encodePrompts(p.tokenizer, options.prompts, options.unknown);
  const maxBatch = checkInt('maxBatch', options.maxBatch ?? 256, 1, 65536);
  const { flag, release } = cancelFlag(options.signal);
  try {
    const out: string[] = [];
    for (let start = 0; start < prompts.length; start += maxBatch) {
      const batch = prompts.slice(start, start + maxBatch);
      const r = await native.lmGenerate(
        model.nativeWeights(),
        ragged(batch),
        { ...p.settings, rowOffset: start },
        p.stopIds,
        flag,
      );
      if (options.signal?.aborted) throw abortError();
      const n = p.settings.maxTokens;
      for (let b = 0; b < batch.length; b++) {
        const ids = r.tokens.subarray(b * n, b * n + r.lengths[b]);
        out.push(cutAtStop(p.tokenizer.decode(ids), p.stops));
      }
    }
    return out;
  } finally {
    release();
  }
}

/**
 * Streams the continuation of one prompt as text pieces while the native loop runs. Tokens that
 * could still turn out to begin a stop string are held back until they cannot.
 */
export async function* stream(
  model: LanguageModel,
  options: StreamOptions,
): AsyncGenerator<string> {
  const p = prepare(model, options);
  const [prompt] = encodePrompts(p.tokenizer, [options.prompt], options.unknown);
  const holdback = Math.max(0, ...(p.stopIds ? Array.from(diff(p.stopIds.offsets)) : [0]));
  const { flag, release } = cancelFlag(options.signal);
  const ids: number[] = [];
  let emitted = '';
  let wake: (() => void) | null = null;
  let done = false;
  let failure: unknown = null;
  let finalLength = -1;
  const job = native
    .lmGenerate(
      model.nativeWeights(),
      ragged([prompt]),
      { ...p.settings, rowOffset: 0 },
      p.stopIds,
      flag,
      (_step, _rows, tokens) => {
        ids.push(...tokens);
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
      const text = cutAtStop(p.tokenizer.decode(ids.slice(0, Math.max(0, ready))), p.stops);
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

function diff(offsets: Int32Array): Int32Array {
  return offsets.subarray(1).map((v, i) => v - offsets[i]);
}
