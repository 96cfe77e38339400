import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "@chat/testkit";
import { BUS_MODE_KEY, BusModeConflict, resolveBusMode, type BusModeSetting } from "../src/bus-mode.js";

describe("resolving the bus mode against a real Redis 7", () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterEach(() => redis.del(BUS_MODE_KEY));
  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("picks sharded with auto, and records it as the deployment's mode", async () => {
    expect(await resolveBusMode(redis, "auto")).toBe("sharded");
    expect(await redis.get(BUS_MODE_KEY)).toBe("sharded");
  });

  it("records an explicit mode the same way, so that auto follows it later", async () => {
    expect(await resolveBusMode(redis, "classic")).toBe("classic");
    expect(await resolveBusMode(redis, "auto")).toBe("classic");
  });

  it("refuses an explicit mode that contradicts the deployment's, saying how to fix it", async () => {
    await resolveBusMode(redis, "auto");
    const refusal = resolveBusMode(redis, "classic");
    await expect(refusal).rejects.toBeInstanceOf(BusModeConflict);
    await expect(refusal).rejects.toThrow(/BUS_MODE=classic, but this deployment runs in sharded mode .*Set BUS_MODE=sharded or auto/);
    expect(await resolveBusMode(redis, "sharded")).toBe("sharded");
  });

  it("refuses a recorded mode it does not know rather than overwrite it", async () => {
    await redis.set(BUS_MODE_KEY, "turbo");
    await expect(resolveBusMode(redis, "auto")).rejects.toThrow(/holds "turbo", which is not classic or sharded/);
  });

  it("never lets processes that start at once run in different modes", async () => {
    // Half ask for classic, half for auto (sharded here): whichever writes first wins, and a
    // process either follows it or refuses to start.
    const settings = Array.from({ length: 20 }, (_, i): BusModeSetting => (i % 2 ? "classic" : "auto"));
    const results = await Promise.allSettled(settings.map((setting) => resolveBusMode(redis, setting)));
    const running = new Set(results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])));
    expect(running.size).toBe(1);
    expect([...running]).toEqual([await redis.get(BUS_MODE_KEY)]);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(BusModeConflict);
  });
});

describe("resolving the bus mode against a server without sharded pub/sub", () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    // Redis 7 with SPUBLISH renamed away answers COMMAND INFO like Redis 6 does.
    server = await startRedis({ args: ["--rename-command", "SPUBLISH", ""] });
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterEach(() => redis.del(BUS_MODE_KEY));
  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("picks classic with auto", async () => {
    expect(await resolveBusMode(redis, "auto")).toBe("classic");
  });

  it("refuses sharded", async () => {
    await expect(resolveBusMode(redis, "sharded")).rejects.toThrow(/BUS_MODE=sharded needs Redis 7 or newer/);
  });
});

describe("resolving the bus mode against a server that refuses COMMAND", () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    // Some managed services restrict COMMAND; the server's version decides instead.
    server = await startRedis({ args: ["--rename-command", "COMMAND", ""] });
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("picks sharded on Redis 7 all the same", async () => {
    expect(await resolveBusMode(redis, "auto")).toBe("sharded");
  });
});
