import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["services/*/test/**/*.test.ts"],
    // The end-to-end files start real Redis servers and service processes: one file at a time
    // keeps a 2-core machine from timing itself out.
    fileParallelism: false,
    pool: "forks",
    setupFiles: ["./vitest.setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
