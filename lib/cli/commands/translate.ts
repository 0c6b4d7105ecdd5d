// rnnkit translate: text through a sequence-to-sequence model (greedy, sampling or beam search).
import { float, int } from '../args';
import { command } from '../command';
import { seq2seqFlags, seq2seqInputs } from '../seq2seq-args';
import { setThreads } from '../shared';

export const translate = command({
  summary: 'translate text with a seq2seq model (greedy or beam search)',
  usage: 'rnnkit translate --model FILE --input TEXT [--input TEXT ...] [options]',
  flags: {
    ...seq2seqFlags,
    'n-best': int('N', 'hypotheses to print per source (default 1)', { min: 1 }, 1),
    temperature: float(
      'T',
      'sample each token (with --beam 1) at this temperature (default 0: greedy)',
      { min: 0 },
    ),
    'top-k': int('K', 'sample among the K most likely tokens (default off)', { min: 0 }),
    'top-p': float('P', 'nucleus sampling (default off)', { min: 0, max: 1 }),
    seed: int('N', 'sampling seed (default 0)', { min: 0 }),
  },
  async run(v) {
    setThreads(v.threads);
    const { model, inputs, options } = await seq2seqInputs(v);
    const nBest = v['n-best'];
    const results = await model.translate(inputs, {
      ...options,
      nBest,
      temperature: v.temperature,
      topK: v['top-k'],
      topP: v['top-p'],
      seed: v.seed,
    });
    for (const t of results) {
      if (nBest === 1) {
        process.stdout.write(`${t.text}\n`);
        continue;
      }
      process.stdout.write(`${t.source}\n`);
      t.hypotheses.forEach((h, k) =>
        process.stdout.write(`  ${k + 1}. ${h.text}  (score ${h.score.toFixed(4)})\n`),
      );
    }
  },
});
