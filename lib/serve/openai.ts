// The OpenAI Completions API over a TextGenerator: POST /v1/completions (JSON, or Server-Sent
// Events of completion chunks ending with `data: [DONE]`) and the error object OpenAI's clients
// read. Sampling and limits are the same as POST /v1/generate's (lib/serve/request.ts); the field
// names are OpenAI's, with rnnkit's extra controls (top_k, repetition_penalty,
// no_repeat_ngram_size) beside them.
import type * as http from 'node:http';
import { randomBytes } from 'node:crypto';

import type { TokenScorer, TokenScores } from '../decode/logprobs';
import type { SamplingOptions } from '../decode/options';
import type { TextGenerator } from '../decode/text-generator';
import type { Completion, FinishReason, StreamEnd } from '../decode/token-loop';
import type { Tokenizer } from '../text';
import {
  bad,
  checkPrompt,
  checkStop,
  flag,
  HttpError,
  numbers,
  parseBody,
  renameOption,
  typeName,
  type RequestLimits,
} from './request';

/** Request field -> library option, for the numeric sampling options. */
const NUMERIC = {
  max_tokens: 'maxTokens',
  temperature: 'temperature',
  top_p: 'topP',
  seed: 'seed',
  top_k: 'topK',
  repetition_penalty: 'repetitionPenalty',
  no_repeat_ngram_size: 'noRepeatNgramSize',
} as const;

const FIELDS = new Set([
  'model',
  'prompt',
  'n',
  'stop',
  'stream',
  'stream_options',
  'logprobs',
  'echo',
  'user',
  ...Object.keys(NUMERIC),
]);

/** OpenAI's default max_tokens for completions. */
const DEFAULT_MAX_TOKENS = 16;
/** Most alternatives `logprobs` may ask for per token (OpenAI's limit). */
export const MAX_LOGPROBS = 5;

export interface CompletionRequest {
  model: string;
  prompts: string[];
  /** The body gave `prompt` as one string. */
  single: boolean;
  n: number;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with the usage, after the choices'. */
  streamUsage: boolean;
  echo: boolean;
  /** Alternatives per token, or null for no log-probabilities. */
  logprobs: number | null;
  sampling: SamplingOptions;
}

function integer(field: string, v: number, min: number, max: number, why = ''): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw bad(`${field} must be an integer in [${min}, ${max}]${why}, got ${v}`);
  }
  return v;
}

/**
 * Parses and checks a POST /v1/completions body; throws HttpError 400 naming the field. A field
 * given as null counts as absent (some clients send every field). `prompt` times `n` may not
 * exceed maxPrompts.
 */
export function parseCompletion(text: string, limits: RequestLimits): CompletionRequest {
  const b = Object.fromEntries(
    Object.entries(parseBody(text, FIELDS)).filter(([, v]) => v !== null),
  );
  if (typeof b.model !== 'string') {
    throw bad(`model must be a string (see GET /v1/models), got ${typeName(b.model)}`);
  }
  if (b.user !== undefined && typeof b.user !== 'string') {
    throw bad(`user must be a string, got ${typeName(b.user)}`);
  }
  let prompts: string[];
  if (Array.isArray(b.prompt)) {
    if (b.prompt.length === 0 || b.prompt.length > limits.maxPrompts) {
      throw bad(`prompt must hold 1 to ${limits.maxPrompts} strings, got ${b.prompt.length}`);
    }
    prompts = b.prompt.map((p, i) => checkPrompt(`prompt[${i}]`, p, limits));
  } else if (typeof b.prompt === 'string') {
    prompts = [checkPrompt('prompt', b.prompt, limits)];
  } else {
    throw bad(`prompt must be a string or an array of strings, got ${typeName(b.prompt)}`);
  }
  const counts = numbers(b, { n: 'n', logprobs: 'logprobs' });
  const n = integer(
    'n',
    counts.n ?? 1,
    1,
    Math.floor(limits.maxPrompts / prompts.length),
    ` (prompts times n at most ${limits.maxPrompts})`,
  );
  const logprobs =
    counts.logprobs === undefined ? null : integer('logprobs', counts.logprobs, 0, MAX_LOGPROBS);
  const stream = flag(b, 'stream');
  if (stream && logprobs !== null) throw bad('logprobs is not available with stream');
  let streamUsage = false;
  if (b.stream_options !== undefined) {
    const o = b.stream_options;
    if (!stream) throw bad('stream_options needs stream: true');
    if (
      typeof o !== 'object' ||
      o === null ||
      Array.isArray(o) ||
      Object.keys(o).some((k) => k !== 'include_usage')
    ) {
      throw bad('stream_options must be an object whose one field is include_usage');
    }
    streamUsage = flag(o as Record<string, unknown>, 'include_usage');
  }
  const sampling: SamplingOptions = { stop: checkStop(b.stop, limits), ...numbers(b, NUMERIC) };
  const maxTokens = integer(
    'max_tokens',
    sampling.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, limits.maxTokens),
    1,
    limits.maxTokens,
  );
  return {
    model: b.model,
    prompts,
    single: typeof b.prompt === 'string',
    n,
    stream,
    streamUsage,
    echo: flag(b, 'echo'),
    logprobs,
    sampling: { ...sampling, maxTokens },
  };
}

/**
 * A library validation message with the request's field names: options become fields, and
 * prompts[i] of the generate call (each prompt repeated n times) becomes prompt[i / n].
 */
export function completionFieldMessage(message: string, request: CompletionRequest | null): string {
  const n = request?.n ?? 1;
  return (
    renameOption(message, NUMERIC) ??
    message.replace(/^prompts\[(\d+)\]/, (_m, i: string) =>
      request?.single ? 'prompt' : `prompt[${Math.floor(Number(i) / n)}]`,
    )
  );
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  408: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
};

const ERROR_CODES: Record<number, string> = {
  401: 'invalid_api_key',
  429: 'queue_full',
  503: 'unavailable',
  504: 'timeout',
};

/** OpenAI's error object for `status` and `message`; `param` is the field the message names. */
export function openaiError(status: number, message: string): Record<string, unknown> {
  const named = /^(?:unknown field '([a-z_]+)'|([a-z_]+)(?:\[\d+\])?(?: |:))/.exec(message);
  const field = named?.[1] ?? named?.[2];
  return {
    error: {
      message,
      type: ERROR_TYPES[status] ?? 'server_error',
      param: field !== undefined && (FIELDS.has(field) || named?.[1]) ? field : null,
      code: status === 404 && field === 'model' ? 'model_not_found' : (ERROR_CODES[status] ?? null),
    },
  };
}

/** What the answers name themselves: a fresh id, the time, the served model. */
function header(model: string) {
  return {
    id: `cmpl-${randomBytes(12).toString('hex')}`,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model,
  };
}

/** The legacy Completions `logprobs` object of one choice. */
interface ChoiceLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * A choice's log-probabilities from the scores of its prompt and completion tokens: with `echo`
 * the prompt's tokens come first (the very first has none). Each token is shown decoded alone;
 * tokens past the end of the returned text (a stop string's) are left out.
 */
function choiceLogprobs(
  c: Completion,
  scores: TokenScores,
  tokenizer: Tokenizer,
  echo: boolean,
  textLength: number,
): ChoiceLogprobs {
  const out: ChoiceLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  const P = c.promptTokens.length;
  const all = [...c.promptTokens, ...c.tokens];
  const piece = (id: number) => tokenizer.decode(Int32Array.of(id));
  let offset = 0;
  for (let i = echo ? 0 : P; i < all.length && offset < textLength; i++) {
    const text = piece(all[i]);
    out.tokens.push(text);
    out.text_offset.push(offset);
    offset += text.length;
    if (i === 0) {
      out.token_logprobs.push(null);
      out.top_logprobs.push(null);
      continue;
    }
    out.token_logprobs.push(scores.logprobs[i - 1]);
    const top: Record<string, number> = {};
    for (let j = 0; j < scores.k; j++) {
      const alt = piece(scores.top[(i - 1) * scores.k + j]);
      top[alt] ??= scores.topLogprobs[(i - 1) * scores.k + j];
    }
    out.top_logprobs.push(top);
  }
  return out;
}

/** A generator that scores tokens and shows them: what `logprobs` needs. */
export type Scoring = TokenScorer & { tokenizer: Tokenizer };

/** Token counts of the choices (prompt i / n each): each prompt counted once. */
function usage(choices: Omit<StreamEnd, 'finish'>[], n: number) {
  const prompt = choices.filter((_c, i) => i % n === 0).reduce((s, c) => s + c.promptTokens, 0);
  const completion = choices.reduce((s, c) => s + c.tokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
}

/** POST /v1/completions without stream: one JSON answer. */
export async function completeJson(
  res: http.ServerResponse,
  generator: TextGenerator,
  scoring: Scoring | null,
  request: CompletionRequest,
  signal: AbortSignal,
): Promise<void> {
  if (request.logprobs !== null && !scoring) {
    throw bad('logprobs: this server cannot score tokens (its generator is not batching)');
  }
  const { prompts, n } = request;
  const completions = await generator.complete({
    ...request.sampling,
    prompts: prompts.flatMap((p) => Array<string>(n).fill(p)),
    signal,
  });
  const choices = await Promise.all(
    completions.map(async (c, index) => {
      const prompt = prompts[Math.floor(index / n)];
      const text = request.echo ? prompt + c.text : c.text;
      let logprobs: ChoiceLogprobs | null = null;
      if (request.logprobs !== null && scoring) {
        const tokens = Int32Array.from([...c.promptTokens, ...c.tokens]);
        const scores = await scoring.score(tokens, request.logprobs);
        logprobs = choiceLogprobs(c, scores, scoring.tokenizer, request.echo, text.length);
      }
      return { index, text, logprobs, finish_reason: c.finish };
    }),
  );
  const ends = completions.map((c) => ({
    promptTokens: c.promptTokens.length,
    tokens: c.tokens.length,
  }));
  const body = JSON.stringify({ ...header(request.model), choices, usage: usage(ends, n) });
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * POST /v1/completions with stream: Server-Sent Events, one `data:` chunk per piece of text of a
 * choice (its `index`), a last chunk per choice with its `finish_reason`, then `data: [DONE]`.
 * Choice index i streams prompt i / n with the random stream of row i, so that the texts are
 * those of the same request without stream; with stream_options.include_usage a last chunk
 * with no choices carries the usage. The headers go out once every choice has its first
 * piece (or has ended), so errors found before (bad options, a full queue) keep their status;
 * an error after them is sent as a `data: {"error": ...}` chunk.
 */
export async function completeStream(
  res: http.ServerResponse,
  generator: TextGenerator,
  request: CompletionRequest,
  signal: AbortSignal,
  failure: (error: unknown) => [number, string],
): Promise<void> {
  const { prompts, n } = request;
  const head = header(request.model);
  const choices = Array.from({ length: prompts.length * n }, (_, index) => {
    const prompt = prompts[Math.floor(index / n)];
    return {
      index,
      prompt,
      pieces: generator.stream({ ...request.sampling, prompt, row: index, signal }),
    };
  });
  const chunk = (index: number, text: string, finish: FinishReason | null) =>
    `data: ${JSON.stringify({ ...head, choices: [{ index, text, logprobs: null, finish_reason: finish }] })}\n\n`;
  // A failure ends the request, and the answer's end aborts `signal`, which ends every choice.
  const firsts = await Promise.all(choices.map((c) => c.pieces.next()));
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  // A client that left, or a choice that failed, has ended the answer: the others stop writing.
  const open = () => !res.writableEnded && !res.destroyed;
  const write = (text: string) => {
    if (open()) res.write(text);
  };
  const run = async (c: (typeof choices)[number], first: IteratorResult<string, StreamEnd>) => {
    if (request.echo) write(chunk(c.index, c.prompt, null));
    let next = first;
    for (; !next.done; next = await c.pieces.next()) write(chunk(c.index, next.value, null));
    write(chunk(c.index, '', next.value.finish));
    return next.value;
  };
  try {
    const ends = await Promise.all(choices.map((c, i) => run(c, firsts[i])));
    if (request.streamUsage) {
      write(`data: ${JSON.stringify({ ...head, choices: [], usage: usage(ends, n) })}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  } catch (error) {
    const [status, message] = failure(error);
    if (open()) res.end(`data: ${JSON.stringify(openaiError(status, message))}\n\n`);
  }
}

/** GET /v1/models: the one model this server runs. */
export function modelList(id: string, created: number): Record<string, unknown> {
  return { object: 'list', data: [modelObject(id, created)] };
}

export function modelObject(id: string, created: number): Record<string, unknown> {
  return { id, object: 'model', created, owned_by: 'rnnkit' };
}

/** The 404 for a model this server does not run. */
export function unknownModel(model: string, served: string): HttpError {
  return new HttpError(404, `model '${model}' is not served here; this server runs '${served}'`);
}
