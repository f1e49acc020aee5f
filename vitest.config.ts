import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { SlowFirstSequencer } from './test/support/sequencer.ts';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: {
      forks: {
        // gc() lets the leak tests measure live memory rather than garbage not yet collected.
        execArgv: ['--expose-gc'],
        // Two files at a time at least: vitest's default (one fewer than the cores) is one on a 2-core
        // machine, which then waits idle on every test that waits on its processes (trainers, Redis, S3).
        maxForks: Math.max(2, availableParallelism() - 1),
      },
    },
    // Slowest files first (from the last run's timings, or a table on a fresh clone): the forks end together.
    sequence: { sequencer: SlowFirstSequencer },
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
