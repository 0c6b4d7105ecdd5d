// Command-line flags, each declared once: its kind, its placeholder, its help line and its check.
// A command's flags give both its parser (node:util parseArgs, then every value checked with an
// error naming the flag) and its help text, so the two cannot drift apart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

/** A mistake in the command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** One flag: how parseArgs reads it and how its raw value becomes a checked `T`. */
export interface Flag<T> {
  type: 'string' | 'boolean';
  multiple: boolean;
  /** What the value is, as help shows it (FILE, N, ...); null for a switch. */
  placeholder: string | null;
  help: string;
  read(raw: unknown, name: string): T;
}

export type Flags = Record<string, Flag<unknown>>;
export type Values<F extends Flags> = { [K in keyof F]: F[K] extends Flag<infer T> ? T : never };

function string<T>(placeholder: string, help: string, read: (s: string, name: string) => T) {
  return {
    type: 'string' as const,
    multiple: false,
    placeholder,
    help,
    read: (raw: unknown, name: string) => read(raw as string, name),
  };
}

function numeric(kind: 'int' | 'number', min: number, max: number) {
  return (s: string, name: string): number => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) {
      throw new UsageError(
        `--${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got '${s}'`,
      );
    }
    if (n < min || n > max) {
      throw new UsageError(`--${name} must be ${min} to ${max}, got ${n}`);
    }
    return n;
  };
}

/** A text value (a file name, a prompt...). */
export function text(placeholder: string, help: string): Flag<string | undefined>;
export function text(placeholder: string, help: string, fallback: string): Flag<string>;
export function text(
  placeholder: string,
  help: string,
  fallback?: string,
): Flag<string | undefined> {
  const f = string(placeholder, help, (s) => s);
  return { ...f, read: (raw) => (raw === undefined ? fallback : (raw as string)) };
}

interface Range {
  min?: number;
  max?: number;
}

/** A numeric flag: optional, or with a fallback when a fourth argument gives one. */
interface NumberFlag {
  (placeholder: string, help: string, range?: Range): Flag<number | undefined>;
  (placeholder: string, help: string, range: Range, fallback: number): Flag<number>;
}

function numberFlag(kind: 'int' | 'number'): NumberFlag {
  return ((placeholder: string, help: string, range: Range = {}, fallback?: number) => {
    const f = string(
      placeholder,
      help,
      numeric(kind, range.min ?? -Infinity, range.max ?? Infinity),
    );
    return {
      ...f,
      read: (raw: unknown, name: string) => (raw === undefined ? fallback : f.read(raw, name)),
    };
  }) as NumberFlag;
}

/** An integer, within [min, max] when given. */
export const int = numberFlag('int');

/** A finite number, within [min, max] when given. */
export const float = numberFlag('number');

/** One of `choices`; its type is their union. */
export function choice<const C extends string>(
  choices: readonly C[],
  help: string,
): Flag<C | undefined>;
export function choice<const C extends string>(
  choices: readonly C[],
  help: string,
  fallback: C,
): Flag<C>;
export function choice<const C extends string>(
  choices: readonly C[],
  help: string,
  fallback?: C,
): Flag<C | undefined> {
  const isChoice = (s: string): s is C => (choices as readonly string[]).includes(s);
  return {
    ...string(choices.join('|'), help, (s) => s),
    read: (raw, name) => {
      if (raw === undefined) return fallback;
      const s = raw as string;
      if (!isChoice(s)) {
        const options = `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}`;
        throw new UsageError(
          `--${name} must be ${choices.length > 1 ? options : choices[0]}, got '${s}'`,
        );
      }
      return s;
    },
  };
}

/** An on/off switch. */
export function on(help: string): Flag<boolean> {
  return { type: 'boolean', multiple: false, placeholder: null, help, read: (raw) => raw === true };
}

/** A text value that may be given several times, in order. */
export function list(placeholder: string, help: string): Flag<string[]> {
  return {
    type: 'string',
    multiple: true,
    placeholder,
    help,
    read: (raw) => (raw as string[] | undefined) ?? [],
  };
}

/** Parses `args` against `flags`: unknown flags, positionals and bad values are UsageErrors. */
export function parse<F extends Flags>(flags: F, args: string[]): Values<F> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(flags).map(([name, f]) => [name, { type: f.type, multiple: f.multiple }]),
      ),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return Object.fromEntries(
    Object.entries(flags).map(([name, f]) => [name, f.read(values[name], name)]),
  ) as Values<F>;
}

/** The help text of a command: its usage line, then one line (or more) per flag. */
export function helpText(usage: string, flags: Flags, notes?: string): string {
  const heads = Object.entries(flags).map(
    ([name, f]) => `--${name}${f.placeholder ? ` ${f.placeholder}` : ''}`,
  );
  const width = Math.max(22, ...heads.map((h) => h.length)) + 1;
  const lines = Object.values(flags).map((f, i) => {
    const [first, ...rest] = f.help.split('\n');
    const head = heads[i].padEnd(width);
    return [`  ${head}${first}`, ...rest.map((l) => `  ${' '.repeat(width)}${l}`)].join('\n');
  });
  return [usage, '', ...lines, ...(notes ? ['', notes] : [])].join('\n');
}

/**
 * --unknown: what a command does with text outside the vocabulary, 'error' or 'map' (to <unk>),
 * `fallback` when the flag is absent (listed first in the help and in the error).
 */
export function unknownFlag(fallback: 'error' | 'map', help: string): Flag<'error' | 'map'> {
  return choice(fallback === 'error' ? ['error', 'map'] : ['map', 'error'], help, fallback);
}

/** Flags several commands share. */
export const common = {
  threads: int('N', 'GEMM threads', { min: 1, max: 1024 }),
  unknown: unknownFlag('error', 'text outside the vocabulary: fail (default) or map to <unk>'),
};

/** Reads a file whole; an unreadable one is a UsageError naming it. */
export function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/** Checks that `out` can be written: its folder exists and is writable, and it is no folder. */
export function checkOutputPath(out: string): void {
  const dir = path.dirname(path.resolve(out));
  if (!fs.existsSync(dir)) throw new UsageError(`the output folder ${dir} does not exist`);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) {
    throw new UsageError(`--out ${out} is a folder; give a file name`);
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`cannot write to the output folder ${dir}`);
  }
}
