import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { Ack, ChatMessage } from "@chat/shared";
import {
  closeAllClients,
  connectClient,
  record,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";

// The chart runs Redis with maxmemory below its container limit and maxmemory-policy noeviction
// (charts/chat/templates/_secrets.tpl): a full Redis refuses writes instead of being OOMKilled.
// This fills a real one to its maxmemory with two chat pods on it.
describe("a Redis full to its maxmemory (noeviction)", () => {
  let redis: RedisServer;
  let admin: Redis;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedis({ args: ["--maxmemory", "16mb", "--maxmemory-policy", "noeviction"] });
    admin = new Redis(redis.url);
    pods = await Promise.all([startService("chat", { env: { REDIS_URL: redis.url } }), startService("chat", { env: { REDIS_URL: redis.url } })]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    admin?.disconnect();
    await redis?.dispose();
  });

  /**
   * Writes values until even a small one is refused with OOM, so nothing the chat writes fits:
   * Redis counts a command's own arguments, so a big value is refused before a small one is.
   * Returns how many writes it took.
   */
  async function fill(): Promise<number> {
    let written = 0;
    for (const size of [256 * 1024, 16 * 1024, 1024, 64]) {
      const chunk = "x".repeat(size);
      for (;;) {
        const err = await admin.set(`filler:${written}`, chunk).then(
          () => undefined,
          (e: Error) => e,
        );
        if (err) {
          expect(err.message).toMatch(/^OOM/);
          break;
        }
        if (++written > 100_000) throw new Error("Redis never reached its maxmemory");
      }
    }
    return written;
  }

  it("refuses sends with `unavailable` while full, keeps the pods up and connected, and recovers when memory frees", async () => {
    const [alice, bob] = await Promise.all([connectClient(pods[0]!.url, "alice"), connectClient(pods[1]!.url, "bob")]);
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "full" })) as Ack).ok).toBe(true);
    const inbox = record<ChatMessage>(bob, "message");
    expect(((await alice.emitWithAck("message", { room: "full", text: "before" })) as Ack).ok).toBe(true);

    expect(await fill()).toBeGreaterThan(0);
    const refused = (await alice.emitWithAck("message", { room: "full", text: "while full", clientMsgId: "m-full" })) as Ack;
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe("unavailable");
      expect(refused.error.message).toMatch(/\S/);
    }
    // Still up: both processes alive, the clients connected, liveness passing.
    for (const pod of pods) {
      expect(pod.child.exitCode).toBeNull();
      expect((await fetch(`${pod.probeUrl}/livez`)).status).toBe(200);
    }
    expect(alice.connected && bob.connected).toBe(true);

    // Memory frees (an operator raises the limit or trims): sends work again, the retry included.
    await admin.flushdb();
    await waitFor(async () => ((await alice.emitWithAck("message", { room: "full", text: "after", clientMsgId: "m-full" })) as Ack).ok, {
      what: "sends to work again once Redis has memory",
    });
    await waitFor(() => inbox.some((m) => m.text === "after"), { what: "bob to get the message sent after recovery" });
    expect(inbox.map((m) => m.text)).not.toContain("while full");
  });
});
