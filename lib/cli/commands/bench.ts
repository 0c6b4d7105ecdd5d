// rnnkit bench: the benchmark harness of `npm run bench` (bench/run.mjs), which parses its own
// arguments.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import type { Command } from '../command';
import { ROOT } from '../shared';

export const bench: Command = {
  summary: 'benchmark rnnkit beside PyTorch and onnxruntime (the harness of npm run bench)',
  help: () => 'rnnkit bench [--quick] [options]   (rnnkit bench --help lists them)',
  async run(args) {
    const file = path.join(ROOT, 'bench', 'run.mjs');
    if (!fs.existsSync(file)) throw new Error(`the benchmark harness ${file} is missing`);
    const harness = (await import(pathToFileURL(file).href)) as {
      main(argv: string[]): Promise<number>;
    };
    return harness.main(args);
  },
};
