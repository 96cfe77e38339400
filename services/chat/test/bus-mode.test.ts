import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, startService, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";

const NOTIFIER_KEYS = "bus-mode-test-key-0123456789";

function start(name: "chat" | "notifier", redisUrl: string, mode: string, wait = true): Promise<ServiceProcess> {
  return startService(name, { wait, env: { REDIS_URL: redisUrl, BUS_MODE: mode, NOTIFIER_API_KEYS: NOTIFIER_KEYS } });
}

const busModeOf = (service: ServiceProcess) => service.logs.find((line) => typeof line.busMode === "string")?.busMode;

describe("one bus mode for the chat pods and the notifier", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await stopAllServices();
    await redis?.dispose();
  });

  it("has every process started with auto run in sharded mode on Redis 7", async () => {
    const [chat, notifier] = await Promise.all([start("chat", redis.url, "auto"), start("notifier", redis.url, "auto")]);
    expect([busModeOf(chat), busModeOf(notifier)]).toEqual(["sharded", "sharded"]);
  });

  it("stops a chat pod or a notifier configured for the other mode, and says why", async () => {
    for (const name of ["chat", "notifier"] as const) {
      const service = await start(name, redis.url, "classic", false);
      expect(await service.exited).toBe(1);
      const fatal = service.logs.find((line) => line.level === 60);
      expect(fatal?.msg).toMatch(/BUS_MODE=classic, but this deployment runs in sharded mode \(Redis key chat:bus:mode\)/);
    }
  });

  it("refuses a mode it does not know as a configuration error", async () => {
    const chat = await start("chat", redis.url, "fast", false);
    expect(await chat.exited).toBe(1);
    expect(chat.rawOutput()).toMatch(/BUS_MODE: must be auto, classic or sharded/);
  });
});

describe("a chat pod started before its Redis", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
    await redis.stop();
  });

  afterAll(async () => {
    await stopAllServices();
    await redis?.dispose();
  });

  it("waits for Redis to learn the bus mode, then starts", async () => {
    const chat = await start("chat", redis.url, "auto", false);
    await chat.waitForLog((line) => /waiting for Redis to learn the message bus mode/.test(line.msg));
    await redis.start();
    await chat.waitForLog((line) => / is up at /.test(line.msg), 15_000);
    expect(busModeOf(chat)).toBe("sharded");
  });
});
