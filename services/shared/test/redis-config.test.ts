import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, env, parseEnv } from "../src/config.js";
import { redisTarget, redisTopologyCheck, redisTopologyEnv } from "../src/redis-config.js";

const schema = z.object({ REDIS_URL: env.redisUrl(), ...redisTopologyEnv });
const parse = (vars: Record<string, string>, required = false) => parseEnv(schema, vars, [redisTopologyCheck({ required, service: "notifier" })]);

function problems(vars: Record<string, string>, required = false): string[] {
  try {
    parse(vars, required);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("the Redis topology variables", () => {
  it("turn REDIS_SENTINELS and REDIS_SENTINEL_MASTER into a sentinel target, IPv6 hosts included", () => {
    const config = parse({ REDIS_SENTINELS: "s-0:26379, s-1:26379,[::1]:26380", REDIS_SENTINEL_MASTER: "mymaster", REDIS_SENTINEL_PASSWORD: "pw" });
    expect(redisTarget(config)).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "s-0", port: 26379 },
        { host: "s-1", port: 26379 },
        { host: "::1", port: 26380 },
      ],
      master: "mymaster",
      sentinelPassword: "pw",
    });
  });

  it("turn REDIS_CLUSTER_NODES into a cluster target, and REDIS_URL into a url target", () => {
    expect(redisTarget(parse({ REDIS_CLUSTER_NODES: "redis-0:6379,redis-1:6379" }))).toEqual({
      kind: "cluster",
      nodes: [
        { host: "redis-0", port: 6379 },
        { host: "redis-1", port: 6379 },
      ],
    });
    expect(redisTarget(parse({ REDIS_URL: "redis://redis:6379" }))).toEqual({ kind: "url", url: "redis://redis:6379" });
    expect(redisTarget(parse({}))).toBeUndefined();
  });

  it("refuse REDIS_URL together with REDIS_SENTINELS or REDIS_CLUSTER_NODES, naming both", () => {
    expect(problems({ REDIS_URL: "redis://redis:6379", REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_MASTER: "m" })).toEqual([
      "REDIS_SENTINELS: cannot be set together with REDIS_URL: name Redis one way, a URL, sentinels or cluster nodes",
    ]);
    expect(problems({ REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_MASTER: "m", REDIS_CLUSTER_NODES: "r:6379" })[0]).toMatch(
      /^REDIS_CLUSTER_NODES: cannot be set together with REDIS_SENTINELS/,
    );
  });

  it("ask for REDIS_SENTINEL_MASTER with REDIS_SENTINELS, and for one endpoint when Redis is required", () => {
    expect(problems({ REDIS_SENTINELS: "s:26379" })).toEqual([
      "REDIS_SENTINEL_MASTER: is required with REDIS_SENTINELS: the master group's name from `sentinel monitor`, e.g. mymaster",
    ]);
    expect(problems({}, true)[0]).toMatch(/^REDIS_URL: is required: the notifier reaches chat pods only through Redis; set REDIS_URL \(or REDIS_SENTINELS/);
  });

  it("explain a malformed host:port list, REDIS_TLS with a URL, and REDIS_WAIT_REPLICAS without Redis or on a cluster", () => {
    expect(problems({ REDIS_CLUSTER_NODES: "redis-0:6379,redis-1", REDIS_WAIT_REPLICAS: "1" })).toEqual([
      'REDIS_CLUSTER_NODES: must be host:port pairs, comma-separated, e.g. redis-0:6379,redis-1:6379,redis-2:6379; "redis-1" is not one (got "redis-0:6379,redis-1")',
      "REDIS_WAIT_REPLICAS: is not available on a Redis Cluster (REDIS_CLUSTER_NODES); set it to 0 (docs/deploy.md states the window)",
    ]);
    expect(problems({ REDIS_CLUSTER_NODES: "redis-0:6379", REDIS_WAIT_REPLICAS: "0" })).toEqual([]);
    expect(problems({ REDIS_URL: "redis://r:6379", REDIS_TLS: "1" })).toEqual([
      "REDIS_TLS: is for REDIS_SENTINELS and REDIS_CLUSTER_NODES; with REDIS_URL, write rediss:// instead",
    ]);
    expect(problems({ REDIS_WAIT_REPLICAS: "1" })).toEqual(["REDIS_WAIT_REPLICAS: needs Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)"]);
  });
});
