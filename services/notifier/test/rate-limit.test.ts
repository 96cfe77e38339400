import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricValue, startRedis, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";
import { API_KEY, OLD_API_KEY, post, startNotifier } from "./helpers.js";

describe("the notifier's per-key rate limit", () => {
  let redis: RedisServer;
  let replicas: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedis();
    const env = { RATE_LIMIT_NOTIFIER_PER_SECOND: "10" };
    replicas = await Promise.all([startNotifier(redis.url, env, "notifier-a"), startNotifier(redis.url, env, "notifier-b")]);
  });

  afterAll(async () => {
    await stopAllServices();
    await redis?.dispose();
  });

  it("is shared by every replica, and answers the excess with 429, Retry-After and retryAfterMs", async () => {
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => post(replicas[i % 2]!.url, "/v1/rooms/lobby/events", { type: "ping", data: i })));
    const accepted = replies.filter((r) => r.status === 202).length;
    // 10 per second for the key, on both replicas together (11-20 if the burst straddles a second).
    expect(accepted).toBeGreaterThanOrEqual(10);
    expect(accepted).toBeLessThanOrEqual(20);
    const refused = replies.filter((r) => r.status === 429);
    expect(refused.length).toBe(30 - accepted);
    for (const reply of refused) {
      expect(reply.body.error).toMatchObject({ code: "rate_limited" });
      expect((reply.body.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    }
    const counted = (await metricValue(replicas[0]!, "notifier_rate_limited_total")) + (await metricValue(replicas[1]!, "notifier_rate_limited_total"));
    expect(counted).toBe(refused.length);
  });

  it("sends Retry-After in seconds", async () => {
    let reply: Response | undefined;
    for (let i = 0; i < 25 && reply?.status !== 429; i++) {
      reply = await fetch(`${replicas[0]!.url}/v1/broadcast`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ type: "ping", data: null }),
      });
    }
    expect(reply?.status).toBe(429);
    expect(Number(reply!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });

  it("counts each key on its own", async () => {
    const other = await post(replicas[1]!.url, "/v1/broadcast", { type: "ping", data: null }, { authorization: `Bearer ${OLD_API_KEY}` });
    expect(other.status).toBe(202);
  });
});
