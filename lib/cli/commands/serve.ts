// rnnkit serve: a model over HTTP from a serving thread, until SIGTERM or SIGINT drains it.
import * as os from 'node:os';

import { serveInWorker } from '../../serve/thread';
import { int, text, UsageError } from '../args';
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
  },
  notes:
    'POST /v1/generate (JSON, or Server-Sent Events with "stream": true) for a language model,\n' +
    'POST /v1/translate for a sequence-to-sequence model, GET /health, GET /v1/model,\n' +
    'GET /metrics (Prometheus). SIGTERM or SIGINT drains: requests in flight finish, new ones get 503.\n' +
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
