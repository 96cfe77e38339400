import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "@chat/testkit";
import { createRateLimit, type RateLimit } from "../src/rate-limit.js";
import { createRedisRoomLog, type AppendRefused, type AppendResult } from "../src/room-log.js";

const refused = (r: AppendResult | AppendRefused): r is AppendRefused => "refused" in r;

// The sender's rate limit is counted by the append script itself (one round trip per message),
// on the same keys and in the same way as rate-limiter-flexible, which counts them everywhere else.
describe("a rate-limited append on a real Redis", () => {
  let server: RedisServer;
  let redis: Redis;
  let n = 0;
  /** A fresh limit per test: `points` per minute, and `burst` more per minute once they are spent. */
  const limit = (points: number, burst = 0): RateLimit =>
    createRateLimit(redis, { keyPrefix: `test:rl:${n++}`, points, durationSeconds: 60, burst: burst ? { points: burst, durationSeconds: 60 } : undefined })!;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("refuses an append over the limit, with the wait, and stores nothing for it", async () => {
    const log = createRedisRoomLog(redis);
    const limiter = limit(2, 1);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await log.appendLimited("limited", "message", { text: `m${i}` }, { limiter, key: "ann" }));
    expect(results.slice(0, 3).some(refused)).toBe(false);
    const last = results[3]!;
    expect(refused(last) && last.retryAfterMs).toBeGreaterThan(0);
    expect(refused(last) && last.retryAfterMs).toBeLessThanOrEqual(60_000);
    const { entries } = await log.read("limited", { limit: 10 });
    expect(entries.map((e) => (e as { text?: string }).text)).toEqual(["m0", "m1", "m2"]);
    // Another sender has a limit of its own.
    expect(refused(await log.appendLimited("limited", "message", { text: "other" }, { limiter, key: "bob" }))).toBe(false);
  });

  it("counts the same points as the rate limiter does on its own", async () => {
    const log = createRedisRoomLog(redis);
    const limiter = limit(3);
    expect(await limiter.consume("cid")).toEqual({ ok: true });
    expect(await limiter.consume("cid")).toEqual({ ok: true });
    expect(refused(await log.appendLimited("shared", "message", { text: "third" }, { limiter, key: "cid" }))).toBe(false);
    expect(refused(await log.appendLimited("shared", "message", { text: "fourth" }, { limiter, key: "cid" }))).toBe(true);
    expect((await limiter.consume("cid")).ok).toBe(false);
  });

  it("lets a retry that the dedupe catches through without spending a point", async () => {
    const log = createRedisRoomLog(redis);
    const limiter = limit(1);
    const dedupe = { scope: "u:dee:1", ttlSeconds: 60 };
    const first = await log.appendLimited("retries", "message", { text: "once" }, { limiter, key: "dee" }, { dedupe });
    const retry = await log.appendLimited("retries", "message", { text: "once" }, { limiter, key: "dee" }, { dedupe });
    expect(refused(first) || refused(retry)).toBe(false);
    expect(retry).toMatchObject({ id: (first as AppendResult).id, duplicate: true });
  });
});
