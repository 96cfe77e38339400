import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { closeAllClients, connectClient, record, repoRoot, startRedis, startService, stopAllServices, waitFor, type RedisServer } from "@chat/testkit";
import type { Notification } from "@chat/shared";
import { joinRoom, startNotifier } from "./helpers.js";

/**
 * Issue 24 #14: a stream producer gets a Redis ACL user that may XADD to the intake stream and do
 * nothing else. The ACL line is taken from docs/notifier.md, so the doc cannot drift from this.
 */
const PASSWORD = "producer-password-0123456789abcdef";

function documentedAclLine(): string[] {
  const doc = readFileSync(`${repoRoot}/docs/notifier.md`, "utf8");
  const line = /^redis-cli (ACL SETUSER notifier-producer .*)$/m.exec(doc)?.[1];
  if (!line) throw new Error("docs/notifier.md has no `redis-cli ACL SETUSER notifier-producer` line");
  // The line's words, unquoted as a shell would (it quotes whole words only).
  return line.split(" ").map((word) => word.replace(/^'(.*)'$/, "$1").replace(/^>.*/, `>${PASSWORD}`));
}

describe("a producer's ACL user", () => {
  let redis: RedisServer;
  let producer: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    const admin = new Redis(redis.url);
    const [command, ...args] = documentedAclLine();
    expect(await admin.call(command!, ...args)).toBe("OK");
    admin.disconnect();
    const url = new URL(redis.url);
    producer = new Redis({
      host: url.hostname,
      port: Number(url.port),
      username: "notifier-producer",
      password: PASSWORD,
      enableReadyCheck: false,
      maxRetriesPerRequest: 1,
    });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    producer?.disconnect();
    await redis?.dispose();
  });

  it("may XADD an event to the intake stream, which the notifier delivers", async () => {
    const [chat] = await Promise.all([startService("chat", { env: { REDIS_URL: redis.url } }), startNotifier(redis.url)]);
    const client = await connectClient(chat.url, "ann");
    const inbox = record<Notification>(client, "notification");
    await joinRoom(client, "town-square");
    await producer.xadd("notifier:events", "MAXLEN", "~", 1000, "*", "room", "town-square", "type", "t", "data", "{}", "id", "from-producer");
    await waitFor(() => inbox.some((n) => n.eventId === "from-producer"), { what: "the producer's event" });
  });

  it.each([
    ["read the stream", ["XRANGE", "notifier:events", "-", "+"]],
    ["trim or delete it", ["DEL", "notifier:events"]],
    ["XADD to another key", ["XADD", "notifier:events:dead", "*", "a", "1"]],
    ["append to a room log", ["XADD", "chat:log:{town-square}", "*", "e", "message"]],
    ["publish on the bus", ["PUBLISH", "socket.io#/#", "x"]],
    ["revoke a token", ["SET", "chat:revoked:someone", "1"]],
    ["read a key", ["GET", "notifier:seen:from-producer"]],
    ["run a script", ["EVAL", "return 1", "0"]],
    ["look at the server", ["INFO"]],
  ])("may not %s", async (_what, [command, ...args]) => {
    await expect(producer.call(command!, ...args)).rejects.toThrow(/^NOPERM/);
  });
});
