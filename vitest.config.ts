import { defineConfig } from 'vitest/config';

// Two projects: fast pure tests, and end-to-end tests that need root and a real
// Docker engine inside network namespaces (see test/host/).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          // One test host per file; the machine has 2 cores.
          fileParallelism: true,
          maxWorkers: 2,
          globalSetup: ['test/host/global-setup.ts'],
        },
      },
    ],
  },
});
