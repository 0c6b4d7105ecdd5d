// rnnkit serve: a model over HTTP from a serving thread, until SIGTERM or SIGINT drains it.
import * as os from 'node:os';
import * as path from 'node:path';

import { serveInWorker } from '../../serve/thread';
import { int, list, on, readBytes, text, UsageError } from '../args';
import { command } from '../command';

export const serve = command({
  summary: 'serve a model over HTTP, concurrent requests batched together',
  usage: 'rnnkit serve --model FILE [options]',
  flags: {
    model: text(
      'FILE',
      'an exported .onnx file (run by onnxruntime) or a model saved by train\n' +
        'or seq2seq train (.safetensors, run by the native kernels); for a\n' +
        'sequence-to-sequence export, the name given to export (X.onnx for\n' +
        'X.encoder.onnx and X.decoder.onnx)',
    ),
    port: int('N', 'port to listen on (default 8080; 0 picks a free one)', { min: 0, max: 65535 }),
    host: text('ADDR', 'interface to listen on (default 127.0.0.1)'),
    'max-batch': int(
      'N',
      'language models: prompts generated together, step by step (default 64)',
      { min: 1 },
    ),
    'max-queue': int(
      'N',
      'language models: prompts waiting for a batch slot; beyond it requests\nget 429 (default 1024)',
      { min: 0 },
    ),
    threads: int(
      'N',
      'compute threads (default: all cores but one, which the event loop and\nHTTP keep to themselves)',
      { min: 1, max: 1024 },
    ),
    'api-key': list(
      'KEY',
      'a key requests must present as Authorization: Bearer KEY (repeatable);\n' +
        'also RNNKIT_API_KEYS (comma-separated) and --api-key-file',
    ),
    'api-key-file': text('FILE', 'keys, one per line (blank lines and # comments skipped)'),
    'public-metrics': on('GET /metrics needs no key even when keys are set'),
    cors: list('ORIGIN', "a browser origin allowed to call the API (repeatable; '*' for any)"),
    'model-name': text(
      'NAME',
      "the model's id in the OpenAI API (default: the file's name without\nits extension)",
    ),
    'no-playground': on('do not serve the playground page at GET /'),
    'request-timeout': int('S', 'longest a request may take, queueing included (default 120)', {
      min: 1,
      max: 86400,
    }),
    'shutdown-timeout': int('S', 'longest a drain waits for the requests in flight (default 30)', {
      min: 0,
      max: 86400,
    }),
  },
  notes:
    'POST /v1/generate (JSON, or Server-Sent Events with "stream": true) for a language model,\n' +
    'POST /v1/translate for a sequence-to-sequence model, OpenAI-compatible POST /v1/completions\n' +
    'and GET /v1/models, GET /health, GET /v1/model, GET /metrics (Prometheus), and a playground\n' +
    'page at GET /. SIGTERM or SIGINT drains: requests in flight finish, new ones get 503.\n' +
    'See docs/serving.md.',
  async run(v) {
    if (!v.model) throw new UsageError('serve needs --model FILE (.onnx or .safetensors)');
    const serving = await serveInWorker({
      file: v.model,
      port: v.port,
      host: v.host,
      maxBatch: v['max-batch'],
      maxQueue: v['max-queue'],
      threads: v.threads ?? Math.max(1, os.availableParallelism() - 1),
      apiKeys: apiKeys(v['api-key'], v['api-key-file']),
      corsOrigins: v.cors,
      metricsNeedKey: !v['public-metrics'],
      modelName: v['model-name'] ?? path.basename(v.model).replace(/\.[^.]*$/, ''),
      playground: !v['no-playground'],
      requestTimeout: seconds(v['request-timeout']),
      shutdownTimeout: seconds(v['shutdown-timeout']),
    });
    process.stdout.write(`rnnkit serve: ${v.model} (${serving.engine}) on ${serving.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    process.stdout.write('rnnkit serve: draining\n');
    await serving.close();
  },
});

/** The keys of --api-key, RNNKIT_API_KEYS and --api-key-file together. */
function apiKeys(flags: string[], file: string | undefined): string[] {
  const fromEnv = (process.env.RNNKIT_API_KEYS ?? '').split(',');
  const fromFile = file === undefined ? [] : readBytes(file).toString('utf8').split('\n');
  const keys = [...flags, ...fromEnv, ...fromFile.filter((l) => !l.trim().startsWith('#'))]
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  const spaced = keys.find((k) => /\s/.test(k));
  if (spaced !== undefined) throw new UsageError(`an API key may not hold spaces: '${spaced}'`);
  if (file !== undefined && keys.length === 0) throw new UsageError(`${file}: no API key in it`);
  return keys;
}

const seconds = (s: number | undefined) => (s === undefined ? undefined : s * 1000);
