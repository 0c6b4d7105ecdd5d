// What a command is: a summary, a usage line, its flags (declared once, in args.ts terms) and
// what it runs with their checked values. The help text is generated from the flags.
import { helpText, parse, type Flags, type Values } from './args';

export interface CommandSpec<F extends Flags> {
  summary: string;
  usage: string;
  flags: F;
  /** Text after the flags in the help. */
  notes?: string;
  run(values: Values<F>): Promise<void>;
}

/** A command as main.ts runs it: its help, and a run over the raw arguments. */
export interface Command {
  summary: string;
  help(): string;
  /** Parses `args` (a UsageError for a bad one) and runs; resolves with the exit code. */
  run(args: string[]): Promise<number>;
}

export function command<F extends Flags>(spec: CommandSpec<F>): Command {
  return {
    summary: spec.summary,
    help: () => helpText(spec.usage, spec.flags, spec.notes),
    run: async (args) => {
      await spec.run(parse(spec.flags, args));
      return 0;
    },
  };
}
