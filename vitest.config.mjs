import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120000,
    hookTimeout: 120000,
    pool: 'forks',
    // The tests import lib/ as TypeScript; worker threads and child processes that load lib/
    // files (training, ONNX sessions, serving) get the same loader through this flag.
    poolOptions: { forks: { execArgv: ['--require', 'tsx/cjs'] } },
    fileParallelism: false,
  },
});
