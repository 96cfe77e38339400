import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { closeAllClients, connectClient, record, startRedis, startService, stopAllServices, waitFor, type RedisServer } from "@chat/testkit";
import type { Notification } from "@chat/shared";
import { joinRoom, pendingCount, redisClient, startNotifier, waitForNoPending, xadd } from "./helpers.js";

const STREAM = "notifier:events";
const TOTAL = 1000;

describe("a notifier SIGKILLed mid-stream", () => {
  let redis: RedisServer;
  let db: Redis;
  let inbox: Notification[];

  beforeAll(async () => {
    redis = await startRedis();
    db = redisClient(redis.url);
    const chat = await startService("chat", { env: { REDIS_URL: redis.url } });
    const client = await connectClient(chat.url, "watcher");
    inbox = record<Notification>(client, "notification");
    await joinRoom(client, "crash");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  it("has its pending entries delivered by the next one, every entry exactly once", async () => {
    const pipeline = db.pipeline();
    for (let i = 0; i < TOTAL; i++) {
      pipeline.xadd(STREAM, "*", "room", "crash", "type", "bulk", "data", String(i), "id", `crash-${i}`);
    }
    await pipeline.exec();

    // Small batches, so the kill lands mid-stream; a short claim idle time, so the test is quick.
    const env = { NOTIFIER_BATCH_SIZE: "10", NOTIFIER_CLAIM_IDLE_MS: "1000" };
    const first = await startNotifier(redis.url, env, "notifier-a");
    await waitFor(() => inbox.length >= 100, { what: () => `100 deliveries before the kill (${inbox.length})` });
    // Freeze every writer (the notifier's reads, publishes and acks) so the kill is certain to land
    // mid-stream, whatever the machine's speed: it dies with a batch read and not acked, or with
    // commands in flight, which Redis may still run once unpaused, as after a real crash.
    await db.call("CLIENT", "PAUSE", "10000", "WRITE");
    await first.kill("SIGKILL");
    await db.call("CLIENT", "UNPAUSE");
    const deliveredAtKill = inbox.length;
    const leftPending = await pendingCount(db, STREAM);
    expect(deliveredAtKill).toBeLessThan(TOTAL);

    const second = await startNotifier(redis.url, env, "notifier-b");
    await waitFor(() => new Set(inbox.map((n) => n.eventId)).size >= TOTAL, {
      timeoutMs: 20_000,
      what: () => `${TOTAL} distinct ids (${new Set(inbox.map((n) => n.eventId)).size} so far)`,
    });
    await waitForNoPending(db, STREAM);
    // Everything published before this marker arrives before it.
    await xadd(db, STREAM, { room: "crash", type: "marker", data: "null", id: "marker" });
    await waitFor(() => inbox.some((n) => n.eventId === "marker"), { what: "the marker" });

    const ids = inbox.filter((n) => n.type === "bulk").map((n) => n.eventId);
    expect(ids).toHaveLength(TOTAL);
    expect(new Set(ids).size).toBe(TOTAL);
    if (leftPending > 0) {
      expect(second.logs.some((l) => /claimed entries a dead consumer left pending/.test(l.msg))).toBe(true);
    }
    console.log(`killed after ${deliveredAtKill} deliveries with ${leftPending} entries pending`);
  });

  it("exits 0 on SIGTERM at once, even while it waits between two reads of an idle stream", async () => {
    const notifier = await startNotifier(redis.url, { NOTIFIER_POLL_MS: "5000", NOTIFIER_CLAIM_IDLE_MS: "600000" }, "notifier-c");
    await notifier.waitForLog((l) => /stream consumer started/.test(l.msg));
    const started = Date.now();
    await notifier.kill("SIGTERM");
    expect(await notifier.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(notifier.logs.some((l) => l.msg === "bye")).toBe(true);
  });
});
