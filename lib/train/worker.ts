// The training worker: rebuilds the model over the caller's shared parameter memory and runs the
// training loop, posting progress back.
import { parentPort, workerData } from 'node:worker_threads';

import type { TrainingState } from '../io/checkpoint';
import { LanguageModel, type LanguageModelSpec } from '../models/language-model';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';
import { trainLoop, type LoopOptions } from './loop';

export interface WorkerInput {
  spec: LanguageModelSpec;
  tokenizer: TokenizerJSON | null;
  seed: number;
  params: Record<string, Float32Array>;
  train: Int32Array;
  validation: Int32Array;
  options: LoopOptions;
  stop: Int32Array;
  resume: { training: TrainingState; optimizerTensors: Record<string, Float32Array> } | null;
}

async function main(input: WorkerInput): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('the training worker must run in a worker thread');
  const model = new LanguageModel({
    ...input.spec,
    seed: input.seed,
    tokenizer: input.tokenizer ? tokenizerFromJSON(input.tokenizer) : undefined,
  });
  for (const [name, p] of model.namedParameters()) p.adopt(input.params[name]);
  try {
    const result = await trainLoop(
      model,
      input.train,
      input.validation,
      input.options,
      (m) => port.postMessage(m),
      () => Atomics.load(input.stop, 0) === 1,
      input.resume ?? undefined,
    );
    port.postMessage({ type: 'done', result });
  } catch (error) {
    port.postMessage({ type: 'error', message: (error as Error).message });
  }
}

void main(workerData as WorkerInput);
