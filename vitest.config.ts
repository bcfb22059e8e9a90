import { defineConfig } from 'vitest/config';

// Three suites, each run on its own by scripts/run-suite.mjs:
//   unit  pure TypeScript, no GPU                      src/**/*.test.ts, scripts/**/*.test.ts
//   gpu   kernels through dawn.node on a real adapter  src/**/*.gpu.test.ts (run once per driver)
//   e2e   the built app in headless Chromium          e2e/**/*.e2e.ts
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'scripts/**/*.test.ts'],
          exclude: ['src/**/*.gpu.test.ts', 'node_modules/**'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'gpu',
          include: ['src/**/*.gpu.test.ts'],
          environment: 'node',
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['e2e/**/*.e2e.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
