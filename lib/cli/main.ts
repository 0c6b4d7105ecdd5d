// The rnnkit command line: finds the command (one file each in commands/), which parses its
// flags and calls the library. Errors print one line and exit non-zero (2 for a usage mistake,
// with the command's help); RNNKIT_DEBUG=1 shows stack traces.
import { UsageError } from './args';
import type { Command } from './command';
import { attention } from './commands/attention';
import { bench } from './commands/bench';
import { evaluate } from './commands/evaluate';
import { exportCommand } from './commands/export';
import { generate } from './commands/generate';
import { info } from './commands/info';
import { quantize } from './commands/quantize';
import { seq2seqTrain } from './commands/seq2seq-train';
import { serve } from './commands/serve';
import { train } from './commands/train';
import { translate } from './commands/translate';

/** Two-word commands ("seq2seq train") are entries whose name holds a space. */
const commands: Record<string, Command> = {
  train,
  generate,
  evaluate,
  'seq2seq train': seq2seqTrain,
  translate,
  attention,
  export: exportCommand,
  quantize,
  serve,
  bench,
  info,
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: rnnkit <command> [options]   (rnnkit <command> --help for its options)',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const twoWords = argv.length > 1 && `${argv[0]} ${argv[1]}` in commands;
  const [name, ...rest] = twoWords ? [`${argv[0]} ${argv[1]}`, ...argv.slice(2)] : argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`rnnkit: unknown command '${name}'\n\n${help()}\n`);
    return 1;
  }
  if (command !== bench && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(command.help() + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const e = error as Error;
    if (process.env.RNNKIT_DEBUG) process.stderr.write(`${e.stack}\n`);
    const usage = e instanceof UsageError;
    process.stderr.write(`rnnkit ${name}: ${e.message}${usage ? `\n\n${command.help()}` : ''}\n`);
    return usage ? 2 : 1;
  }
}
