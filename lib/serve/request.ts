// The bodies of POST /v1/generate and POST /v1/translate: JSON shape and type checks that name the
// offending field, the server's own limits, and the mapping to the library's GenerateOptions and
// TranslateOptions. Value ranges (top_p in (0, 1], seed >= 0, ...) are the library's checks;
// errors it raises name its option (topP), which `fieldMessage` turns back into the request's
// field (top_p).
import type { SamplingOptions } from '../decode/options';
import type { TranslateOptions } from '../decode/translate';

export interface RequestLimits {
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes: number;
  /** Longest prompt in characters (default 8192). */
  maxPromptChars: number;
  /** Most prompts in one request (default 64). */
  maxPrompts: number;
  /** Largest max_tokens (default 2048). */
  maxTokens: number;
  /** Most stop strings (default 16). */
  maxStops: number;
  /** Longest stop string in characters (default 256). */
  maxStopChars: number;
  /** Largest beam of a translate request (default 16). */
  maxBeam: number;
}

export const DEFAULT_LIMITS: RequestLimits = {
  maxBodyBytes: 1 << 20,
  maxPromptChars: 8192,
  maxPrompts: 64,
  maxTokens: 2048,
  maxStops: 16,
  maxStopChars: 256,
  maxBeam: 16,
};

/** Deepest valid body: an object holding arrays of strings. */
const MAX_DEPTH = 2;

/** A request error answered with `status` and `message` as JSON `{ error }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface GenerateRequest {
  prompts: string[];
  /** The body gave `prompt` (one string) rather than `prompts`. */
  single: boolean;
  stream: boolean;
  sampling: SamplingOptions;
}

/** Request field -> library option, for the numeric sampling options. */
const NUMERIC = {
  max_tokens: 'maxTokens',
  temperature: 'temperature',
  top_k: 'topK',
  top_p: 'topP',
  repetition_penalty: 'repetitionPenalty',
  no_repeat_ngram_size: 'noRepeatNgramSize',
  seed: 'seed',
} as const;

const FIELDS = new Set(['prompt', 'prompts', 'stop', 'stream', ...Object.keys(NUMERIC)]);

export const bad = (message: string) => new HttpError(400, message);

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  return Array.isArray(v) ? 'array' : typeof v;
}

/**
 * Rejects bodies nested deeper than any valid one before parsing: JSON.parse of a hostile,
 * deeply nested body costs stack and time for nothing.
 */
function checkDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > MAX_DEPTH) {
        throw bad(`body: JSON nested deeper than ${MAX_DEPTH} levels (an object of fields)`);
      }
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
}

export function checkPrompt(field: string, p: unknown, limits: RequestLimits): string {
  if (typeof p !== 'string') throw bad(`${field} must be a string, got ${typeName(p)}`);
  if (p.length > limits.maxPromptChars) {
    throw bad(
      `${field} has ${p.length} characters, more than the limit of ${limits.maxPromptChars}`,
    );
  }
  return p;
}

export function checkStop(stop: unknown, limits: RequestLimits): string | string[] | undefined {
  if (stop === undefined) return stop;
  const long = (field: string, s: string) => {
    if (s.length > limits.maxStopChars) {
      throw bad(
        `${field} has ${s.length} characters, more than the limit of ${limits.maxStopChars}`,
      );
    }
  };
  if (typeof stop === 'string') {
    long('stop', stop);
    return stop;
  }
  if (!Array.isArray(stop))
    throw bad(`stop must be a string or an array of strings, got ${typeName(stop)}`);
  if (stop.length > limits.maxStops) {
    throw bad(`stop has ${stop.length} strings, more than the limit of ${limits.maxStops}`);
  }
  stop.forEach((s, i) => {
    if (typeof s !== 'string') throw bad(`stop[${i}] must be a string, got ${typeName(s)}`);
    long(`stop[${i}]`, s);
  });
  return stop as string[];
}

/** A JSON object body with no field outside `fields`; throws HttpError 400 otherwise. */
export function parseBody(text: string, fields: Set<string>): Record<string, unknown> {
  checkDepth(text);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw bad(`body: malformed JSON (${(error as Error).message})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw bad(`body must be a JSON object, got ${typeName(body)}`);
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !fields.has(k));
  if (unknown.length > 0) {
    throw bad(`unknown field '${unknown[0]}'; the fields are ${[...fields].join(', ')}`);
  }
  return b;
}

/** A boolean field of `b`, false when absent. */
export function flag(b: Record<string, unknown>, field: string): boolean {
  const v = b[field];
  if (v !== undefined && typeof v !== 'boolean') {
    throw bad(`${field} must be true or false, got ${typeName(v)}`);
  }
  return v === true;
}

/** The numeric fields of `b` that are present, under their library option names. */
export function numbers<F extends string, O extends string>(
  b: Record<string, unknown>,
  names: Record<F, O>,
): Partial<Record<O, number>> {
  const out: Partial<Record<O, number>> = {};
  for (const [field, option] of Object.entries(names) as [F, O][]) {
    const v = b[field];
    if (v === undefined) continue;
    if (typeof v !== 'number') throw bad(`${field} must be a number, got ${typeName(v)}`);
    out[option] = v;
  }
  return out;
}

/** Parses and checks a POST /v1/generate body; throws HttpError 400 naming the field. */
export function parseGenerate(text: string, limits: RequestLimits): GenerateRequest {
  const b = parseBody(text, FIELDS);
  if ((b.prompt === undefined) === (b.prompts === undefined)) {
    throw bad('give exactly one of prompt (a string) and prompts (an array of strings)');
  }
  let prompts: string[];
  if (b.prompts !== undefined) {
    if (!Array.isArray(b.prompts))
      throw bad(`prompts must be an array of strings, got ${typeName(b.prompts)}`);
    if (b.prompts.length === 0 || b.prompts.length > limits.maxPrompts) {
      throw bad(`prompts must hold 1 to ${limits.maxPrompts} strings, got ${b.prompts.length}`);
    }
    prompts = b.prompts.map((p, i) => checkPrompt(`prompts[${i}]`, p, limits));
  } else {
    prompts = [checkPrompt('prompt', b.prompt, limits)];
  }
  const stream = flag(b, 'stream');
  if (stream && prompts.length !== 1)
    throw bad('stream takes one prompt; send prompt, not prompts');
  const sampling: SamplingOptions = { stop: checkStop(b.stop, limits), ...numbers(b, NUMERIC) };
  const maxTokens = sampling.maxTokens ?? Math.min(200, limits.maxTokens);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > limits.maxTokens) {
    throw bad(`max_tokens must be an integer in [1, ${limits.maxTokens}], got ${maxTokens}`);
  }
  return { prompts, single: b.prompt !== undefined, stream, sampling: { ...sampling, maxTokens } };
}

/** Renames a library option at the start of a validation message to its request field. */
export function renameOption(message: string, names: Record<string, string>): string | null {
  for (const [field, option] of Object.entries(names)) {
    if (message.startsWith(`${option} `)) return field + message.slice(option.length);
  }
  return null;
}

/** A generate validation message with the request's field names. */
export function fieldMessage(message: string, single: boolean): string {
  return (
    renameOption(message, NUMERIC) ??
    (single ? message.replace(/^prompts\[0\]/, 'prompt') : message)
  );
}

export interface TranslateRequest {
  sources: string[];
  options: TranslateOptions;
  /** Answer each best hypothesis's attention as an SVG heatmap too. */
  attention: boolean;
}

/** Request field -> TranslateOptions option. */
const TRANSLATE_NUMERIC = {
  beam: 'beam',
  n_best: 'nBest',
  max_length: 'maxLength',
  length_penalty: 'lengthPenalty',
} as const;

const TRANSLATE_FIELDS = new Set(['sources', ...Object.keys(TRANSLATE_NUMERIC), 'attention']);

/**
 * Parses and checks a POST /v1/translate body; throws HttpError 400 naming the field. `sources`
 * takes the prompt limits (maxPrompts strings of at most maxPromptChars), `max_length` is at most
 * maxTokens and `beam` at most maxBeam.
 */
export function parseTranslate(text: string, limits: RequestLimits): TranslateRequest {
  const b = parseBody(text, TRANSLATE_FIELDS);
  if (!Array.isArray(b.sources)) {
    throw bad(`sources must be an array of strings, got ${typeName(b.sources)}`);
  }
  if (b.sources.length === 0 || b.sources.length > limits.maxPrompts) {
    throw bad(`sources must hold 1 to ${limits.maxPrompts} strings, got ${b.sources.length}`);
  }
  const sources = b.sources.map((p, i) => checkPrompt(`sources[${i}]`, p, limits));
  const options: TranslateOptions = numbers(b, TRANSLATE_NUMERIC);
  const within = (field: string, v: number | undefined, max: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > max)) {
      throw bad(`${field} must be an integer in [1, ${max}], got ${v}`);
    }
  };
  within('beam', options.beam, limits.maxBeam);
  within('max_length', options.maxLength, limits.maxTokens);
  return { sources, options, attention: flag(b, 'attention') };
}

/** A translate validation message with the request's field names. */
export function translateFieldMessage(message: string): string {
  const m = message.replace(/^translate: /, '');
  return renameOption(m, TRANSLATE_NUMERIC) ?? m;
}
