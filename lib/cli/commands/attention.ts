// rnnkit attention: a seq2seq model's attention for one input, drawn as an SVG heatmap.
import { writeFileAtomic } from '../../core/atomic';
import { attentionHeatmapSvg } from '../../decode/heatmap';
import { checkOutputPath, text, UsageError } from '../args';
import { command } from '../command';
import { seq2seqFlags, seq2seqInputs } from '../seq2seq-args';
import { setThreads } from '../shared';

export const attention = command({
  summary: "draw a seq2seq model's attention for one input as an SVG heatmap",
  usage: 'rnnkit attention --model FILE --input TEXT --out FILE.svg [--beam N]',
  flags: {
    ...seq2seqFlags,
    out: text('FILE.svg', 'the heatmap to write'),
  },
  async run(v) {
    setThreads(v.threads);
    if (!v.out) throw new UsageError('attention needs --out FILE.svg');
    checkOutputPath(v.out);
    const { model, inputs, options } = await seq2seqInputs(v);
    if (inputs.length !== 1) throw new UsageError('attention takes exactly one --input');
    const [t] = await model.translate(inputs, options);
    const best = t.hypotheses[0];
    await writeFileAtomic(
      v.out,
      attentionHeatmapSvg(t.sourceTokens, best.tokens, best.attention, `${t.source} -> ${t.text}`),
    );
    process.stdout.write(`${t.text}\nsaved ${v.out}\n`);
  },
});
