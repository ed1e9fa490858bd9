import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Real servers on loopback are shared by parallel files; each file isolates itself by database
    // name and Redis prefix, so files may run concurrently.
    pool: 'forks',
    reporters: ['default'],
  },
});
