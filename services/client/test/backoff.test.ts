import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAllChatClients, connectChatClient, startRedis, startService, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";
import { ChatClient, retryDelay } from "@chat/client";

/** A deterministic source of numbers in [0, 1) (mulberry32), so that every run spreads the same way. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("retryDelay, the jittered backoff of @chat/client after a refusal", () => {
  it("spreads 1000 clients refused together with retryAfterMs 2000 over the second after it, none sooner", () => {
    const random = seeded(22);
    const delays = Array.from({ length: 1000 }, () => retryDelay(0, 2000, { random }));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...delays)).toBeLessThan(3000);
    // Ten slices of 100 ms: each takes about a tenth of the clients, none a crowd.
    const slices = Array.from({ length: 10 }, (_, i) => delays.filter((d) => d >= 2000 + i * 100 && d < 2100 + i * 100).length);
    for (const count of slices) expect(count).toBeGreaterThan(60);
    for (const count of slices) expect(count).toBeLessThan(140);
  });

  it("doubles the random window with each refusal in a row, up to maxMs", () => {
    const top = { random: () => 0.999_999, baseMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 40].map((attempt) => retryDelay(attempt, undefined, top))).toEqual([999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999]);
    expect(retryDelay(3, 500, { random: () => 0 })).toBe(500);
  });
});

describe("@chat/client refused by a real pod", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    // Open mode charges every new connection to its address: the second one from here is refused.
    pod = await startService("chat", { env: { REDIS_URL: redis.url, RATE_LIMIT_CONNECTIONS_PER_IP: "1" } });
  });

  afterAll(async () => {
    closeAllChatClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("tries again after rate_limited no sooner than retryAfterMs, plus its jitter", async () => {
    await connectChatClient(pod.url, "ann");
    const bob = new ChatClient(pod.url, { auth: { name: "bob" }, retryBackoff: { random: () => 0.25 }, socket: { transports: ["websocket"] } });
    try {
      const [refused, retrying] = await Promise.all([
        new Promise<Error & { data?: { code: string; retryAfterMs: number } }>((resolve) => bob.socket.once("connect_error", resolve)),
        new Promise<{ code: string; delayMs: number }>((resolve) => bob.once("retrying", resolve)),
      ]);
      expect(refused.data?.code).toBe("rate_limited");
      expect(retrying).toEqual({ code: "rate_limited", delayMs: refused.data!.retryAfterMs + 250 });
    } finally {
      bob.close();
    }
  });
});
