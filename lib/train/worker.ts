// The training worker: rebuilds the model over the caller's shared parameter memory and runs the
// training loop, posting progress back.
import { workerData } from 'node:worker_threads';

import { LanguageModelNetwork } from '../models/language-model';
import { tokenizerFromJSON } from '../text';
import { serveTraining, type LmTrainingInput } from './fit';
import { trainLoop } from './language-model';

const input = workerData as LmTrainingInput;
void serveTraining(
  input,
  () =>
    new LanguageModelNetwork({
      ...input.spec,
      seed: input.seed,
      tokenizer: input.tokenizer ? tokenizerFromJSON(input.tokenizer) : undefined,
    }),
  trainLoop,
);
