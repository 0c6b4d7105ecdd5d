#!/usr/bin/env node
// The `rnnkit` executable. It loads the command line inside a try, so that where no native addon
// fits this machine the user reads the loader's one line (what was tried, how to fix it), not a
// stack trace.
import type * as Cli from './main';

let cli: typeof Cli;
try {
  cli = require('./main') as typeof Cli;
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}
cli.main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`rnnkit: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
