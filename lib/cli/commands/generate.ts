// rnnkit generate: text from a trained language model (default: the bundled model).
import { LanguageModel } from '../../api/language-model';
import { common, float, int, list, on, text, UsageError } from '../args';
import { command } from '../command';
import { DEFAULT_MODEL, setThreads } from '../shared';

export const generate = command({
  summary: 'generate text from a trained model (default: the bundled model)',
  usage: 'rnnkit generate [--model FILE] [--prompt TEXT ...] [options]',
  flags: {
    model: text('FILE', 'model saved by train (default: the bundled default model)', DEFAULT_MODEL),
    prompt: list('TEXT', 'a prompt; repeat for several (all run as one batch)'),
    n: int('N', 'samples per prompt (default 1)', { min: 1 }, 1),
    'max-tokens': int('N', 'tokens to generate (default 200)', { min: 1 }, 200),
    temperature: float('T', '0 = greedy (default 0.8)', { min: 0 }, 0.8),
    'top-k': int('K', 'keep the K most likely tokens (default off)', { min: 0 }),
    'top-p': float('P', 'nucleus sampling (default off)', { min: 0, max: 1 }),
    'repetition-penalty': float('R', '(default off)', { min: 0 }),
    stop: list('TEXT', 'stop at this text; repeatable'),
    seed: int('N', 'sampling seed (default random)', { min: 0 }),
    stream: on('print the text as it is generated (one prompt)'),
    unknown: common.unknown,
    threads: common.threads,
  },
  async run(v) {
    setThreads(v.threads);
    const model = await LanguageModel.load(v.model);
    const prompts = v.prompt.length > 0 ? v.prompt : ['\n'];
    const options = {
      maxTokens: v['max-tokens'],
      temperature: v.temperature,
      topK: v['top-k'],
      topP: v['top-p'],
      repetitionPenalty: v['repetition-penalty'],
      stop: v.stop.length > 0 ? v.stop : undefined,
      seed: v.seed,
      unknown: v.unknown,
    };
    if (v.stream) {
      if (prompts.length !== 1 || v.n !== 1) {
        throw new UsageError('--stream takes one --prompt and --n 1');
      }
      process.stdout.write(prompts[0]);
      for await (const piece of model.stream({ prompt: prompts[0], ...options })) {
        process.stdout.write(piece);
      }
      process.stdout.write('\n');
      return;
    }
    const all = prompts.flatMap((p) => Array<string>(v.n).fill(p));
    const texts = await model.generate({ prompts: all, ...options });
    texts.forEach((t, i) => {
      if (all.length > 1) process.stdout.write(`--- sample ${i + 1} ---\n`);
      process.stdout.write(`${all[i]}${t}\n`);
    });
  },
});
