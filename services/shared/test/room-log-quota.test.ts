import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, waitFor, type RedisServer } from "@chat/testkit";
import { createRateLimit } from "../src/rate-limit.js";
import { createMemoryRoomLog, createRedisRoomLog } from "../src/room-log.js";
import { createStorageQuota, type StorageQuota } from "../src/storage-quota.js";

// The storage quotas are charged by the append script itself, in the same round trip as the
// message is stored, published and rate-limited (issue 22: they had cost three more per message),
// on the same keys and in the same way as rate-limiter-flexible, which `charge` still uses.
describe("an append that charges the storage quotas, on a real Redis", () => {
  let server: RedisServer;
  let redis: Redis;
  let n = 0;
  /** Fresh quota keys per test. */
  const quotaOf = (userBytes: number, roomBytes = 0, totalBytes = 0): { quota: StorageQuota; prefix: string } => {
    const prefix = `test:quota:${n++}`;
    return { quota: createStorageQuota(redis, { userBytes, roomBytes, totalBytes, windowSeconds: 3600, keyPrefix: prefix })!, prefix };
  };

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("stores, publishes, rate-limits and charges all three quotas in one command per message", async () => {
    const log = createRedisRoomLog(redis);
    const { quota, prefix } = quotaOf(10_000, 10_000, 10_000);
    const limiter = createRateLimit(redis, { keyPrefix: `${prefix}:rl`, points: 10, durationSeconds: 60 })!;
    await log.append("warm", "message", { text: "loads the script" });
    const monitor = await redis.monitor();
    const sent: string[] = [];
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (source !== "lua") sent.push(String(args[0]).toLowerCase());
    });
    for (let i = 0; i < 3; i++) {
      const charge = quota.prepare("ann", "one-trip", 100);
      expect(await log.appendLimited("one-trip", "message", { text: `m${i}` }, { limiter, key: "ann" }, { charge })).not.toHaveProperty("refused");
    }
    await redis.ping("end");
    await waitFor(() => sent.includes("ping"), { timeoutMs: 10_000 });
    monitor.disconnect();
    // One script run per message (an EVAL the first time on a connection, EVALSHA after: lua.ts).
    expect(sent.filter((c) => c !== "ping")).toEqual([expect.stringMatching(/^eval(sha)?$/), "evalsha", "evalsha"]);
    expect(await redis.mget(`${prefix}:user:ann`, `${prefix}:room:one-trip`, `${prefix}:total:all`)).toEqual(["300", "300", "300"]);
    expect(await redis.ttl(`${prefix}:user:ann`)).toBeGreaterThan(3500);
  });

  it("refuses from memory once the script spent a quota, counting what rate-limiter-flexible charged before", async () => {
    const log = createRedisRoomLog(redis);
    const { quota } = quotaOf(1000);
    await quota.charge("bob", "spend", 600);
    expect(quota.check("bob", "spend")).toEqual({ ok: true });
    await log.append("spend", "message", { text: "the last one that fits" }, { charge: quota.prepare("bob", "spend", 400) });
    const refusal = quota.check("bob", "spend");
    expect(refusal).toMatchObject({ ok: false, scope: "user", limitBytes: 1000 });
    expect(!refusal.ok && refusal.retryAfterMs).toBeGreaterThan(3_500_000);
    // Another user's quota is untouched.
    expect(quota.check("cat", "spend")).toEqual({ ok: true });
  });

  it("charges nothing for a retry the dedupe catches, nor for an append the rate limit refuses", async () => {
    const log = createRedisRoomLog(redis);
    const { quota, prefix } = quotaOf(10_000);
    const limiter = createRateLimit(redis, { keyPrefix: `${prefix}:rl`, points: 1, durationSeconds: 60 })!;
    const dedupe = { scope: "u:dee:1", ttlSeconds: 60 };
    const send = (text: string, options = {}) =>
      log.appendLimited("free", "message", { text }, { limiter, key: "dee" }, { ...options, charge: quota.prepare("dee", "free", 50) });
    expect(await send("once", { dedupe })).toMatchObject({ duplicate: false });
    expect(await send("once", { dedupe })).toMatchObject({ duplicate: true });
    expect(await send("over the limit")).toHaveProperty("refused", "rate_limited");
    expect(await redis.get(`${prefix}:user:dee`)).toBe("50");
  });
});

describe("an append that charges the storage quotas, in memory (a single node)", () => {
  it("charges what was stored, not a duplicate, and refuses once a quota is spent", async () => {
    const log = createMemoryRoomLog(() => undefined);
    const quota = createStorageQuota(undefined, { userBytes: 100, roomBytes: 0, totalBytes: 0, windowSeconds: 60 })!;
    const dedupe = { scope: "u:eve:1", ttlSeconds: 60 };
    await log.append("mem", "message", { text: "a" }, { dedupe, charge: quota.prepare("eve", "mem", 60) });
    await log.append("mem", "message", { text: "a" }, { dedupe, charge: quota.prepare("eve", "mem", 60) });
    expect(quota.check("eve", "mem")).toEqual({ ok: true });
    await log.append("mem", "message", { text: "b" }, { charge: quota.prepare("eve", "mem", 60) });
    expect(quota.check("eve", "mem")).toMatchObject({ ok: false, scope: "user", limitBytes: 100 });
  });
});
