// rnnkit evaluate: a language model's loss on a text, over every next-token prediction.
import { LanguageModel } from '../../api/language-model';
import { common, int, text, unknownFlag, UsageError } from '../args';
import { command } from '../command';
import { readCorpus, setThreads } from '../shared';

export const evaluate = command({
  summary: 'loss, perplexity and bits per token of a model on a text file',
  usage: 'rnnkit evaluate --model FILE --data FILE [--seq-length N] [--unknown map|error]',
  flags: {
    model: text('FILE', 'model saved by train'),
    data: text('FILE', 'the text to score, UTF-8: every next-token prediction of it counts'),
    'seq-length': int('N', 'tokens per window, state carried between windows (default 100)', {
      min: 1,
    }),
    unknown: unknownFlag(
      'map',
      "text outside the model's vocabulary: score it as <unk> (map, the default)\nor fail (error)",
    ),
    threads: common.threads,
  },
  async run(v) {
    setThreads(v.threads);
    if (!v.model || !v.data) throw new UsageError('evaluate needs --model FILE and --data FILE');
    const model = await LanguageModel.load(v.model);
    const r = model.evaluate(readCorpus(v.data), {
      seqLength: v['seq-length'],
      unknown: v.unknown,
    });
    process.stdout.write(
      `loss ${r.loss.toFixed(4)} nats/token, perplexity ${r.perplexity.toFixed(3)}, ` +
        `${r.bitsPerToken.toFixed(4)} bits/token over ${r.tokens.toLocaleString('en-US')} ` +
        'next-token predictions (every token of the text after the first)\n',
    );
  },
});
