// Runs `rnnkit serve` as a child process for the tests that check the command end to end.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'main.js');

export interface ServeCli {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** Sends SIGTERM and resolves with the exit code once the server has drained and exited. */
  stop(): Promise<number | null>;
}

/** Starts `rnnkit serve --port 0 ...args` and resolves once it prints the URL it listens on. */
export async function serveCli(args: string[]): Promise<ServeCli> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args]);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
  });
  return {
    url,
    child,
    stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
