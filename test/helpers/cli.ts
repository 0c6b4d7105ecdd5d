// Running the rnnkit command from its TypeScript source in a child process (tsx compiles it as it
// loads), so the CLI tests need only the addon built.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

/** Node's arguments before the command's own: the TypeScript loader and lib/cli/bin.ts. */
export const CLI = ['--require', 'tsx/cjs', path.join(ROOT, 'lib', 'cli', 'bin.ts')];

/** Runs `rnnkit ...args` to completion. */
export function runCli(args: string[], env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...CLI, ...args], {
    encoding: 'utf8',
    env: env ? { ...process.env, ...env } : undefined,
  });
}
