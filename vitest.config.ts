import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Socket tests bind loopback ports and temp paths; files run in parallel, tests in a file in order.
    pool: 'forks',
    // One test PKI and a private temp folder per run; fails the run if a test leaves trews-* files behind.
    globalSetup: ['test/global-setup.ts'],
  },
});
