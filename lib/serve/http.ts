// The HTTP server over a TextGenerator or a Translator (a Seq2Seq or OnnxSeq2Seq), on Node's own
// http module: POST /v1/generate (JSON or Server-Sent Events) or POST /v1/translate, OpenAI's
// POST /v1/completions and GET /v1/models (lib/serve/openai.ts), GET /health, GET /v1/model,
// GET /metrics (Prometheus) and the playground page at GET /, behind API keys and CORS
// (lib/serve/access.ts) when they are set. The main thread only parses, routes and writes;
// generation runs in the generator's worker (translation in the libuv pool or the ONNX worker), so
// /health answers while a batch is stepping. Longer than 400 lines on purpose: every route reads
// and writes the one Service's state (requests in flight, draining, metrics, limits).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

import type { SamplingOptions } from '../decode/options';
import type { TextGenerator } from '../decode/text-generator';
import { checkInt } from '../core/validate';
import { OnnxSeq2Seq } from '../onnx/seq2seq';
import type { Translator } from '../decode/translate';
import { attentionHeatmapSvg } from '../decode/heatmap';
import { Access, type AccessOptions } from './access';
import { BatchingGenerator, QueueFullError, QueueTimeoutError } from './batching';
import { Counter, Gauge, Histogram, Registry } from './metrics';
import {
  completeJson,
  completeStream,
  completionFieldMessage,
  modelList,
  modelObject,
  openaiError,
  parseCompletion,
  unknownModel,
  type CompletionRequest,
} from './openai';
import { PLAYGROUND_HTML } from './playground';
import {
  DEFAULT_LIMITS,
  HttpError,
  fieldMessage,
  parseGenerate,
  parseTranslate,
  translateFieldMessage,
  type GenerateRequest,
  type RequestLimits,
} from './request';

export interface ServerOptions extends Partial<RequestLimits>, AccessOptions {
  /** The model's name in GET /v1/models and the `model` field of completions (default 'rnnkit'). */
  modelName?: string;
  /** Serve the playground page at GET / (default true). */
  playground?: boolean;
  /** Port to listen on (default 8080; 0 picks a free one). */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /**
   * Longest a generate or translate request may take, queueing included, in ms (default 120000);
   * then 504.
   */
  requestTimeout?: number;
  /** Longest a client may take to send its headers and body, in ms (default 10000); then 408. */
  bodyTimeout?: number;
  /** Longest close() waits for requests in flight before dropping them, in ms (default 30000). */
  shutdownTimeout?: number;
}

export interface RunningServer {
  /** http://host:port, with the port actually bound. */
  url: string;
  server: http.Server;
  /**
   * Graceful shutdown: stops taking connections and requests (503), lets the requests in flight
   * finish (up to shutdownTimeout), then closes every connection. The generator stays open.
   */
  close(): Promise<void>;
}

/** rnnkit's own routes, whose errors are `{"error": "message"}`; other paths answer OpenAI's shape. */
const OWN_ROUTES = new Set(['/health', '/v1/model', '/metrics', '/v1/generate', '/v1/translate']);
const ROUTES = new Set([...OWN_ROUTES, '/', '/v1/completions', '/v1/models']);
/** Paths open to anyone when API keys are set (probes, and the page that asks for a key). */
const OPEN_PATHS = new Set(['/health', '/']);
/** Seconds a client is asked to wait after a 429 or 503. */
const RETRY_AFTER = '1';

/** Seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Status for requests whose client went away before the answer (nginx's convention). */
const CLIENT_CLOSED = 499;

/** How long shutdown waits, once every answer is out, for a request read only then (see drain). */
const PIPELINE_GRACE_MS = 20;

/** An error answer: OpenAI's error object, or rnnkit's `{"error": message}`. */
function sendError(res: http.ServerResponse, status: number, message: string, openai: boolean) {
  if (status === 429 || status === 503) res.setHeader('Retry-After', RETRY_AFTER);
  sendJson(res, status, openai ? openaiError(status, message) : { error: message });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * What a route does, for its error messages: its work, its library option -> field names, and
 * whether its errors take OpenAI's shape.
 */
interface Route {
  what: 'generation' | 'translation';
  rename(message: string): string;
  openai: boolean;
}

const GENERATE: Route = {
  what: 'generation',
  rename: (m) => fieldMessage(m, false),
  openai: false,
};
const TRANSLATE: Route = { what: 'translation', rename: translateFieldMessage, openai: false };

/** The status and message a failed request gets; validation errors name the request's field. */
function errorStatus(error: unknown, route: Route): [number, string] {
  if (error instanceof HttpError) return [error.status, error.message];
  if (error instanceof QueueFullError) return [429, error.message];
  if (error instanceof QueueTimeoutError) return [503, error.message];
  // The generators check their options before any work and throw these for bad values only.
  if (error instanceof RangeError || error instanceof TypeError) {
    return [400, route.rename(error.message)];
  }
  return [500, `${route.what} failed: ${(error as Error).message}`];
}

/**
 * A refused body is still read, and thrown away, up to this many bytes: a client that sends its
 * whole body before reading the answer then gets the answer, where closing the connection with
 * its bytes unread would reset it and lose the answer.
 */
const DISCARD_LIMIT = 64 << 20;

/**
 * Only JSON bodies are taken: a web page can send text/plain, form and multipart bodies to a local
 * server without a CORS preflight, and application/json it cannot.
 */
function checkContentType(req: http.IncomingMessage): void {
  const type = req.headers['content-type'];
  const media = type?.split(';')[0].trim().toLowerCase();
  if (media !== 'application/json') {
    throw new HttpError(
      415,
      `body: Content-Type ${type === undefined ? 'missing' : `'${type}'`}; send application/json`,
    );
  }
}

/** Reads the body up to `maxBytes`, failing with 413, or 408 when it has not come in time. */
function readBody(req: http.IncomingMessage, maxBytes: number, timeoutMs: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    return Promise.reject(
      new HttpError(413, `body: ${declared} bytes, more than the limit of ${maxBytes}`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (error: HttpError | null) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes)
        done(new HttpError(413, `body: more than the limit of ${maxBytes} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = () => done(null);
    const onError = () => done(new HttpError(400, 'body: the upload failed'));
    const timer = setTimeout(
      () => done(new HttpError(408, `body: not received within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Reads and drops what is left of a refused body, up to DISCARD_LIMIT bytes and `timeoutMs`;
 * resolves true when the body ended within them, false otherwise.
 */
function discardBody(req: http.IncomingMessage, timeoutMs: number): Promise<boolean> {
  if (req.complete) return Promise.resolve(true);
  if (Number(req.headers['content-length'] ?? 0) > DISCARD_LIMIT) return Promise.resolve(false);
  return new Promise((resolve) => {
    let size = 0;
    const done = (drained: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      resolve(drained);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > DISCARD_LIMIT) done(false);
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.resume();
  });
}

class Service {
  readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly latency: Histogram;
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });
  private readonly unobserve: () => void = () => {};
  private inFlight = 0;
  private readonly answering = new Set<http.ServerResponse>();
  private draining = false;
  private onIdle: (() => void) | null = null;

  private readonly generator: TextGenerator | null;
  private readonly translator: Translator | null;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    model: TextGenerator | Translator,
    private readonly limits: RequestLimits,
    private readonly requestTimeout: number,
    private readonly bodyTimeout: number,
    private readonly access: Access,
    private readonly modelName: string,
    private readonly playground: boolean,
  ) {
    const translator = 'translate' in model ? model : null;
    const generator = 'translate' in model ? null : model;
    this.translator = translator;
    this.generator = generator;
    const r = this.registry;
    this.requests = r.add(
      new Counter('rnnkit_http_requests_total', 'HTTP requests answered, by path and status.'),
    );
    const work = translator ? 'translate' : 'generate';
    this.latency = r.add(
      new Histogram(
        `rnnkit_${work}_duration_seconds`,
        `Time from a POST /v1/${work} arriving to its last byte, queueing included.`,
        LATENCY_BUCKETS,
      ),
    );
    r.add(
      new Gauge('rnnkit_requests_in_flight', `POST /v1/${work} requests being answered.`, () => [
        [{}, this.inFlight],
      ]),
    );
    if (generator instanceof BatchingGenerator) {
      const tokens = r.add(
        new Counter('rnnkit_generated_tokens_total', 'Tokens sampled by the batch.'),
      );
      const batch = r.add(
        new Histogram('rnnkit_batch_size', 'Prompts in the batch at each step.', BATCH_BUCKETS),
      );
      this.unobserve = generator.observe((size) => {
        tokens.inc({}, size);
        batch.observe(size);
      });
      r.add(
        new Gauge('rnnkit_queue_depth', 'Prompts waiting for a batch slot.', () => [
          [{}, generator.load.queued],
        ]),
      );
      r.add(
        new Gauge('rnnkit_batch_active', 'Prompts in the batch.', () => [
          [{}, generator.load.active],
        ]),
      );
    }
    r.add(
      new Gauge(
        'rnnkit_event_loop_delay_seconds',
        "The server's event-loop delay since it started: median, 99th percentile and worst.",
        () => [
          [{ stat: 'p50' }, this.delay.percentile(50) / 1e9],
          [{ stat: 'p99' }, this.delay.percentile(99) / 1e9],
          [{ stat: 'max' }, this.delay.max / 1e9],
        ],
      ),
    );
    r.add(
      new Gauge('process_resident_memory_bytes', 'Resident set size of the process.', () => [
        [{}, process.memoryUsage.rss()],
      ]),
    );
    r.add(
      new Gauge('nodejs_heap_size_used_bytes', "The main thread's V8 heap in use.", () => [
        [{}, process.memoryUsage().heapUsed],
      ]),
    );
    this.delay.enable();
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    // Every answer counts until its last byte is out, or its connection is gone (an answer queued
    // behind another on a pipelining connection gets no 'close' of its own then), so that
    // shutdown closes no connection with an answer still to write.
    const socket = req.socket;
    const answered = () => {
      socket.off('close', answered);
      if (this.answering.delete(res) && this.answering.size === 0) this.onIdle?.();
    };
    this.answering.add(res);
    socket.once('close', answered);
    res.on('close', () => {
      answered();
      const status = res.writableFinished ? res.statusCode : CLIENT_CLOSED;
      this.requests.inc({ path: ROUTES.has(path) ? path : 'other', status: String(status) });
    });
    if (this.draining) res.setHeader('Connection', 'close');
    const allow = (method: string) => {
      if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return;
      res.setHeader('Allow', method === 'GET' ? 'GET, HEAD' : method);
      throw new HttpError(405, `${path} takes ${method}, not ${req.method}`);
    };
    const openai = !OWN_ROUTES.has(path);
    try {
      if (req.method === 'OPTIONS') return this.access.preflight(req, res);
      this.access.checkOrigin(req, res);
      if (!OPEN_PATHS.has(path) && (path !== '/metrics' || this.access.metricsNeedKey)) {
        this.access.checkKey(req);
      }
      switch (path) {
        case '/':
          if (!this.playground) throw new HttpError(404, 'no such path: / (the playground is off)');
          allow('GET');
          res.writeHead(200, {
            'Content-Type': 'text/html; charset=utf-8',
            // The page is self-contained: it loads nothing and talks only to this server.
            'Content-Security-Policy':
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
              "img-src data:; connect-src 'self'",
          });
          return void res.end(PLAYGROUND_HTML);
        case '/health':
          allow('GET');
          return this.draining
            ? sendJson(res, 503, { status: 'draining' })
            : sendJson(res, 200, { status: 'ok' });
        case '/v1/model':
          allow('GET');
          return sendJson(res, 200, this.model());
        case '/metrics': {
          allow('GET');
          const text = this.registry.render();
          res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
          return void res.end(text);
        }
        case '/v1/models':
          allow('GET');
          return sendJson(res, 200, modelList(this.modelName, this.created));
        case '/v1/completions':
          allow('POST');
          if (this.draining) throw new HttpError(503, 'the server is shutting down');
          if (!this.generator) {
            throw new HttpError(
              400,
              `${path}: this server runs a sequence-to-sequence model; use POST /v1/translate`,
            );
          }
          return void this.complete(req, res, this.generator);
        case '/v1/generate':
        case '/v1/translate': {
          allow('POST');
          if (this.draining) throw new HttpError(503, 'the server is shutting down');
          if (path === '/v1/generate' && this.generator) {
            return void this.generate(req, res, this.generator);
          }
          if (path === '/v1/translate' && this.translator) {
            return void this.translate(req, res, this.translator);
          }
          throw new HttpError(
            404,
            this.translator
              ? `${path}: this server runs a sequence-to-sequence model; use POST /v1/translate`
              : `${path}: this server runs a language model; use POST /v1/generate`,
          );
        }
        default: {
          const id = /^\/v1\/models\/(.+)$/.exec(path)?.[1];
          if (id === undefined) throw new HttpError(404, `no such path: ${path}`);
          allow('GET');
          const name = decodeURIComponent(id);
          if (name !== this.modelName) throw unknownModel(name, this.modelName);
          return sendJson(res, 200, modelObject(name, this.created));
        }
      }
    } catch (error) {
      const [status, message] = errorStatus(error, GENERATE);
      sendError(res, status, message, openai);
    }
  }

  private model(): Record<string, unknown> {
    const limits = {
      max_body_bytes: this.limits.maxBodyBytes,
      max_prompt_chars: this.limits.maxPromptChars,
      max_prompts: this.limits.maxPrompts,
      max_tokens: this.limits.maxTokens,
    };
    const t = this.translator;
    if (t) {
      return {
        backend: t instanceof OnnxSeq2Seq ? 'onnx' : 'native',
        kind: 'seq2seq',
        source_vocab_size: t.spec.sourceVocab,
        target_vocab_size: t.spec.targetVocab,
        config: t.spec,
        limits: { ...limits, max_beam: this.limits.maxBeam },
      };
    }
    const g = this.generator as TextGenerator;
    const info = g.info;
    return {
      backend: info.backend,
      ...(g instanceof BatchingGenerator
        ? { engine: g.engine, max_batch: g.limits.maxBatch, max_queue: g.limits.maxQueue }
        : {}),
      vocab_size: info.vocabSize,
      config: info.spec,
      limits: {
        ...limits,
        max_stops: this.limits.maxStops,
        max_stop_chars: this.limits.maxStopChars,
      },
    };
  }

  /**
   * Answers a POST whose body `work` turns into the answer: reads the body, times the request out
   * (504), counts it in flight until the last byte is out (or the client is gone), so shutdown
   * never cuts an answer, and aborts `signal` when the client goes away.
   */
  private async answer(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    route: Route,
    work: (body: string, signal: AbortSignal, started: number) => Promise<void>,
  ): Promise<void> {
    const started = performance.now();
    this.inFlight++;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.requestTimeout);
    res.on('close', () => {
      clearTimeout(timer);
      controller.abort();
      this.latency.observe((performance.now() - started) / 1000);
      this.inFlight--;
    });
    try {
      let text: string;
      try {
        checkContentType(req);
        text = await readBody(req, this.limits.maxBodyBytes, this.bodyTimeout);
      } catch (error) {
        // The connection closes after the answer. A refused body (413, 415) is read to its end
        // first, within bounds, so the close is graceful; otherwise the connection is dropped.
        res.setHeader('Connection', 'close');
        const refused =
          error instanceof HttpError && (error.status === 413 || error.status === 415);
        if (!refused || !(await discardBody(req, this.bodyTimeout))) {
          res.on('finish', () => req.socket.destroy());
        }
        throw error;
      }
      await work(text, controller.signal, started);
    } catch (error) {
      if (res.headersSent || res.destroyed) return;
      const [status, message] = timedOut
        ? [504, `${route.what} took longer than ${this.requestTimeout} ms`]
        : errorStatus(error, route);
      sendError(res, status, message, route.openai);
    }
  }

  private generate(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    generator: TextGenerator,
  ): Promise<void> {
    let request: GenerateRequest | null = null;
    const route: Route = {
      what: 'generation',
      rename: (m) => fieldMessage(m, request?.single ?? false),
      openai: false,
    };
    return this.answer(req, res, route, async (text, signal, started) => {
      request = parseGenerate(text, this.limits);
      const options = { ...request.sampling, signal };
      if (request.stream) {
        await this.streamEvents(res, generator, request.prompts[0], options, started);
      } else {
        const completions = await generator.generate({ prompts: request.prompts, ...options });
        sendJson(res, 200, { completions, elapsed_ms: performance.now() - started });
      }
    });
  }

  /** POST /v1/completions: OpenAI's Completions API over the generator. */
  private complete(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    generator: TextGenerator,
  ): Promise<void> {
    let request: CompletionRequest | null = null;
    const route: Route = {
      what: 'generation',
      rename: (m) => completionFieldMessage(m, request),
      openai: true,
    };
    return this.answer(req, res, route, async (text, signal) => {
      const parsed = parseCompletion(text, this.limits);
      request = parsed;
      if (parsed.model !== this.modelName) throw unknownModel(parsed.model, this.modelName);
      if (parsed.stream) {
        await completeStream(res, generator, parsed, signal, (error) =>
          this.streamFailure(error, res, signal, route),
        );
      } else {
        const scoring = generator instanceof BatchingGenerator ? generator : null;
        await completeJson(res, generator, scoring, parsed, signal);
      }
    });
  }

  /** Why a stream that had begun failed: its time ran out, or the error's status and message. */
  private streamFailure(
    error: unknown,
    res: http.ServerResponse,
    signal: AbortSignal | undefined,
    route: Route,
  ): [number, string] {
    return signal?.aborted && !res.destroyed
      ? [504, `${route.what} took longer than ${this.requestTimeout} ms`]
      : errorStatus(error, route);
  }

  /**
   * Translation runs to the end once started (translate takes no AbortSignal): a timed-out or
   * abandoned request stops waiting for it, not the work.
   */
  private translate(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    translator: Translator,
  ): Promise<void> {
    return this.answer(req, res, TRANSLATE, async (text, _signal, started) => {
      const { sources, options, attention } = parseTranslate(text, this.limits);
      const results = await translator.translate(sources, options);
      const translations = results.map((t) => {
        const best = t.hypotheses[0];
        return {
          text: t.text,
          hypotheses: t.hypotheses.map((h) => ({ text: h.text, score: h.score })),
          ...(attention
            ? { attention_svg: attentionHeatmapSvg(t.sourceTokens, best.tokens, best.attention) }
            : {}),
        };
      });
      sendJson(res, 200, { translations, elapsed_ms: performance.now() - started });
    });
  }

  /**
   * Server-Sent Events: one `data: {"text": ...}` event per piece, then `event: done` with the
   * whole completion, or `event: error`. Headers go out with the first piece, so errors found
   * before it (bad options, a full queue) still get their HTTP status.
   */
  private async streamEvents(
    res: http.ServerResponse,
    generator: TextGenerator,
    prompt: string,
    options: SamplingOptions,
    started: number,
  ): Promise<void> {
    const pieces = generator.stream({ prompt, ...options });
    let completion = '';
    let next = await pieces.next();
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    try {
      for (; !next.done; next = await pieces.next()) {
        completion += next.value;
        res.write(`data: ${JSON.stringify({ text: next.value })}\n\n`);
      }
      const done = { completion, elapsed_ms: performance.now() - started };
      res.end(`event: done\ndata: ${JSON.stringify(done)}\n\n`);
    } catch (error) {
      const [, message] = this.streamFailure(error, res, options.signal, GENERATE);
      res.end(`event: error\ndata: ${JSON.stringify({ error: message })}\n\n`);
    }
  }

  /**
   * Stops taking generate requests; resolves once every answer begun is written (or its client
   * gone) and no request has come in for PIPELINE_GRACE_MS after that, or after `timeout` ms. The
   * pause is for a request that a pipelining client sent behind a long answer: Node reads it only
   * once that answer is out, and it must be answered (503) before its connection is closed.
   */
  async drain(timeout: number): Promise<void> {
    this.draining = true;
    const deadline = performance.now() + timeout;
    for (let left = timeout; left > 0; left = deadline - performance.now()) {
      await this.allAnswered(left);
      await new Promise((resolve) => setTimeout(resolve, PIPELINE_GRACE_MS));
      if (this.answering.size === 0) return;
    }
  }

  /** Resolves when no answer is being written, or after `timeout` ms. */
  private allAnswered(timeout: number): Promise<void> {
    if (this.answering.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeout);
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      this.onIdle = finish;
    });
  }

  stop(): void {
    this.delay.disable();
    this.unobserve();
  }
}

/**
 * Serves `model` over HTTP: a TextGenerator on POST /v1/generate, or a Translator (Seq2Seq,
 * OnnxSeq2Seq) on POST /v1/translate. Pass a BatchingGenerator to merge concurrent generate
 * requests into one batch and get its queue limits (429) and batch metrics; any TextGenerator
 * works.
 */
export async function startServer(
  model: TextGenerator | Translator,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const limits: RequestLimits = {
    maxBodyBytes: checkInt('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes, 2),
    maxPromptChars: checkInt(
      'maxPromptChars',
      options.maxPromptChars ?? DEFAULT_LIMITS.maxPromptChars,
      1,
    ),
    maxPrompts: checkInt('maxPrompts', options.maxPrompts ?? DEFAULT_LIMITS.maxPrompts, 1),
    maxTokens: checkInt('maxTokens', options.maxTokens ?? DEFAULT_LIMITS.maxTokens, 1, 1_000_000),
    maxStops: checkInt('maxStops', options.maxStops ?? DEFAULT_LIMITS.maxStops, 0),
    maxStopChars: checkInt('maxStopChars', options.maxStopChars ?? DEFAULT_LIMITS.maxStopChars, 1),
    maxBeam: checkInt('maxBeam', options.maxBeam ?? DEFAULT_LIMITS.maxBeam, 1),
  };
  const port = checkInt('port', options.port ?? 8080, 0, 65535);
  const host = options.host ?? '127.0.0.1';
  const requestTimeout = checkInt('requestTimeout', options.requestTimeout ?? 120_000, 1);
  const bodyTimeout = checkInt('bodyTimeout', options.bodyTimeout ?? 10_000, 1);
  const shutdownTimeout = checkInt('shutdownTimeout', options.shutdownTimeout ?? 30_000, 0);
  const service = new Service(
    model,
    limits,
    requestTimeout,
    bodyTimeout,
    new Access(options),
    options.modelName ?? 'rnnkit',
    options.playground ?? true,
  );
  const server = http.createServer(
    {
      // Node's own limits on slow clients, checked every second rather than every 30 s.
      headersTimeout: bodyTimeout,
      requestTimeout: bodyTimeout,
      connectionsCheckingInterval: 1000,
    },
    (req, res) => service.handle(req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shown}:${address.port}`,
    server,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await service.drain(shutdownTimeout);
        server.closeAllConnections();
        await closed;
        service.stop();
      })();
      return closing;
    },
  };
}
