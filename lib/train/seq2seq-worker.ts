// The seq2seq training worker: rebuilds the model over the caller's shared parameter memory and
// runs the training loop, posting progress back.
import { workerData } from 'node:worker_threads';

import { Seq2Seq, type Seq2SeqSpec } from '../models/seq2seq';
import { tokenizerFromJSON, type TokenizerJSON } from '../text';
import { serveTraining, type TrainingWorkerData } from './fit';
import { trainSeq2SeqLoop, type Seq2SeqLoopOptions, type TokenPair } from './seq2seq';

export interface Seq2SeqWorkerInput extends TrainingWorkerData<TokenPair[], Seq2SeqLoopOptions> {
  spec: Seq2SeqSpec;
  /** So that checkpoints written by the worker carry the vocabularies. */
  sourceTokenizer: TokenizerJSON | null;
  targetTokenizer: TokenizerJSON | null;
}

const input = workerData as Seq2SeqWorkerInput;
const tokenizer = (json: TokenizerJSON | null) => (json ? tokenizerFromJSON(json) : undefined);
void serveTraining(
  input,
  () =>
    new Seq2Seq({
      ...input.spec,
      sourceTokenizer: tokenizer(input.sourceTokenizer),
      targetTokenizer: tokenizer(input.targetTokenizer),
      // Seeds the dropout masks (the weights come from the caller).
      seed: input.options.seed,
    }),
  trainSeq2SeqLoop,
);
