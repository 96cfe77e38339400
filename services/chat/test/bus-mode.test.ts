import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, repoRoot, startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";

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

  it("stops a chat pod or a notifier configured for the other mode, says why and points to a README heading that exists", async () => {
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    for (const name of ["chat", "notifier"] as const) {
      const service = await start(name, redis.url, "classic", false);
      expect(await service.exited).toBe(1);
      const fatal = service.logs.find((line) => line.level === 60);
      expect(fatal?.msg).toMatch(/BUS_MODE=classic, but this deployment runs in sharded mode \(Redis key chat:bus:mode\)/);
      // The README heading it points to exists.
      const heading = /\(README, "([^"]+)"\)$/.exec(fatal?.msg ?? "")?.[1];
      expect(readme.split("\n")).toContain(`## ${heading}`);
    }
  });

  it("refuses a mode it does not know as a configuration error", async () => {
    const chat = await start("chat", redis.url, "fast", false);
    expect(await chat.exited).toBe(1);
    expect(chat.rawOutput()).toMatch(/BUS_MODE: must be auto, classic or sharded/);
  });
});

describe("a chat pod and a notifier started before their Redis", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
    await redis.stop();
  });

  afterAll(async () => {
    await stopAllServices();
    await redis?.dispose();
  });

  it("serve their probes, unready, until Redis tells them the bus mode; then start", async () => {
    const services = await Promise.all(
      (["chat", "notifier"] as const).map(async (name) => {
        const probePort = await freePort();
        const env = { REDIS_URL: redis.url, BUS_MODE: "auto", NOTIFIER_API_KEYS: NOTIFIER_KEYS, PROBE_PORT: String(probePort) };
        return { service: await startService(name, { wait: false, env }), probe: `http://127.0.0.1:${probePort}` };
      }),
    );
    for (const { service, probe } of services) {
      await service.waitForLog((line) => /waiting for Redis to learn the message bus mode/.test(line.msg));
      await waitFor(
        async () =>
          (await fetch(`${probe}/readyz`).then(
            (r) => r.status,
            () => 0,
          )) === 503,
        { what: "readyz to answer 503" },
      );
      expect((await fetch(`${probe}/livez`)).status).toBe(200);
    }
    await redis.start();
    for (const { service, probe } of services) {
      await service.waitForLog((line) => / is up at /.test(line.msg), 40_000);
      expect(busModeOf(service)).toBe("sharded");
      await waitFor(async () => (await fetch(`${probe}/readyz`)).status === 200, { what: `${service.name} to be ready` });
    }
  });
});
