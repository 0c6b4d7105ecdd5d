// The training worker: rebuilds the model over the caller's shared parameter memory and runs the
// training loop, posting progress back.
import { workerData } from 'node:worker_threads';

import { LanguageModel, type LanguageModelSpec } from '../models/language-model';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';
import { serveTraining, type TrainingWorkerData } from './fit';
import { trainLoop, type LoopOptions } from './loop';

export interface WorkerInput extends TrainingWorkerData<Int32Array, LoopOptions> {
  spec: LanguageModelSpec;
  tokenizer: TokenizerJSON | null;
  seed: number;
}

const input = workerData as WorkerInput;
void serveTraining(
  input,
  () =>
    new LanguageModel({
      ...input.spec,
      seed: input.seed,
      tokenizer: input.tokenizer ? tokenizerFromJSON(input.tokenizer) : undefined,
    }),
  trainLoop,
);
