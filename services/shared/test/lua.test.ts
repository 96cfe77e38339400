import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "@chat/testkit";
import { luaScript } from "../src/lua.js";

const SOURCE = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
const incrBy = luaScript<number>(SOURCE, 1);

describe("a Lua script on a real Redis", () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("runs on a Redis that does not know it yet (after a restart), then by its SHA", async () => {
    const sha = createHash("sha1").update(SOURCE).digest("hex");
    await redis.script("FLUSH");
    expect(await redis.script("EXISTS", sha)).toEqual([0]);
    expect(await incrBy.run(redis, "lua:a", 2)).toBe(2);
    // The fallback EVAL cached it: the next run's EVALSHA finds it.
    expect(await redis.script("EXISTS", sha)).toEqual([1]);
    expect(await incrBy.run(redis, "lua:a", 3)).toBe(5);
  });

  it("runs queued on a pipeline behind its load, even after Redis forgot every script", async () => {
    await redis.script("FLUSH");
    const pipeline = redis.pipeline();
    incrBy.load(pipeline);
    incrBy.queue(pipeline, "lua:b", 1);
    incrBy.queue(pipeline, "lua:b", 10);
    const replies = await pipeline.exec();
    expect(replies?.slice(1)).toEqual([
      [null, 1],
      [null, 11],
    ]);
  });

  it("passes a script's own error on", async () => {
    const failing = luaScript<never>("return redis.error_reply('ERR nope')", 0);
    await expect(failing.run(redis)).rejects.toThrow(/nope/);
  });
});
