import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./src/polyfill.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time (vitest's default on 2 cores is one): most files wait on child
    // processes, sockets and disks, not on the CPU.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
