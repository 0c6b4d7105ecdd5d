// The model, inputs and decoding flags that translate and attention share.
import { Seq2Seq } from '../api/seq2seq';
import type { TranslateOptions } from '../decode/translate';
import { common, float, int, list, text, UsageError } from './args';

export const seq2seqFlags = {
  model: text('FILE', 'a model saved by seq2seq train'),
  input: list('TEXT', 'a source text; repeat for several (decoded as one batch)'),
  beam: int('N', 'beam size (default 1: greedy)', { min: 1 }),
  'max-length': int('N', 'output tokens at most (default 2 * source length + 10)', { min: 1 }),
  'length-penalty': float('A', 'GNMT alpha (default 0.6 with --beam > 1)', { min: 0, max: 100 }),
  unknown: common.unknown,
  threads: common.threads,
};

/** Loads the model and reads the inputs and the decoding options. */
export async function seq2seqInputs(v: {
  model: string | undefined;
  input: string[];
  beam: number | undefined;
  'max-length': number | undefined;
  'length-penalty': number | undefined;
  unknown: 'error' | 'map';
}): Promise<{ model: Seq2Seq; inputs: string[]; options: TranslateOptions }> {
  if (!v.model) throw new UsageError('needs --model FILE (a model saved by seq2seq train)');
  if (v.input.length === 0) throw new UsageError('needs at least one --input TEXT');
  const model = await Seq2Seq.load(v.model);
  const options: TranslateOptions = {
    beam: v.beam,
    maxLength: v['max-length'],
    lengthPenalty: v['length-penalty'],
    unknown: v.unknown,
  };
  return { model, inputs: v.input, options };
}
