import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // In CI only, a failed test runs once more: the integration tests drive real servers
    // on a shared 2-core machine, and timing under load is not what they test. A real
    // failure fails twice; locally there is no retry, so a flake stays visible.
    retry: process.env.CI === 'true' ? 1 : 0,
    reporters: ['default'],
  },
});
