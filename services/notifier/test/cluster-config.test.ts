import { describe, expect, it } from "vitest";
import { ConfigError } from "@chat/shared";
import { loadConfig } from "../src/config.js";

const base = { REDIS_CLUSTER_NODES: "10.0.0.5:6379,10.0.0.6:6379", NOTIFIER_API_KEYS: "test-key-0123456789abcdef" };
const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig({ ...base, ...env });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
};

describe("the notifier's configuration on a Redis Cluster", () => {
  it("takes cluster nodes instead of REDIS_URL", () => {
    expect(loadConfig(base).REDIS_CLUSTER_NODES).toEqual([
      { host: "10.0.0.5", port: 6379 },
      { host: "10.0.0.6", port: 6379 },
    ]);
  });

  it("refuses REDIS_WAIT_REPLICAS there, in one line that says what to do", () => {
    expect(problems({ REDIS_WAIT_REPLICAS: "1" })).toEqual([expect.stringMatching(/^REDIS_WAIT_REPLICAS: is not available on a Redis Cluster .*set it to 0/)]);
    expect(problems({ REDIS_WAIT_REPLICAS: "0" })).toEqual([]);
  });
});
