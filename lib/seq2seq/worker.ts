// The seq2seq training worker: rebuilds the model over the caller's shared parameter memory and
// runs the training loop, posting progress back.
import { parentPort, workerData } from 'node:worker_threads';

import { Seq2Seq, type Seq2SeqSpec } from '../models/seq2seq';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';
import { trainSeq2SeqLoop, type Seq2SeqLoopOptions, type TokenPair } from './train';

export interface Seq2SeqWorkerInput {
  spec: Seq2SeqSpec;
  /** So that checkpoints written by the worker carry the vocabularies. */
  sourceTokenizer: TokenizerJSON | null;
  targetTokenizer: TokenizerJSON | null;
  params: Record<string, Float32Array>;
  train: TokenPair[];
  validation: TokenPair[];
  options: Seq2SeqLoopOptions;
  stop: Int32Array;
}

async function main(input: Seq2SeqWorkerInput): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the training worker must run in a worker thread');
  const tokenizer = (json: TokenizerJSON | null) => (json ? tokenizerFromJSON(json) : undefined);
  const model = new Seq2Seq({
    ...input.spec,
    sourceTokenizer: tokenizer(input.sourceTokenizer),
    targetTokenizer: tokenizer(input.targetTokenizer),
    seed: 0,
  });
  for (const [name, p] of model.namedParameters()) p.adopt(input.params[name]);
  try {
    const result = await trainSeq2SeqLoop(
      model,
      input.train,
      input.validation,
      input.options,
      (m) => port.postMessage(m),
      () => Atomics.load(input.stop, 0) === 1,
    );
    port.postMessage({ type: 'done', result });
  } catch (error) {
    port.postMessage({ type: 'error', message: (error as Error).message });
  }
}

void main(workerData as Seq2SeqWorkerInput);
