import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
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
import type { Notification } from "@chat/shared";
import { joinRoom, post, redisClient, startNotifier, waitForNoPending, xadd } from "./helpers.js";

/**
 * Issue 24 #7: one bad stream entry must never stop the notifier. Each attack is performed against
 * real notifiers, a real chat pod and a real Redis; the entries behind the poison must arrive.
 */

/** `data` nested `depth` arrays deep: 3000 overflowed Socket.IO's recursive msgpack encoder. */
function nested(depth: number): unknown {
  let data: unknown = 1;
  for (let i = 0; i < depth; i++) data = [data];
  return data;
}
const DEEP = JSON.stringify(nested(3000));

interface DeadLetter {
  entry: string;
  reason: string;
  fields: string;
}

async function deadLetters(db: Redis, stream: string): Promise<DeadLetter[]> {
  const entries = (await db.xrange(`${stream}:dead`, "-", "+")) as [string, string[]][];
  return entries.map(([, flat]) => Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]!]]))) as unknown as DeadLetter);
}

/** The most memory the process ever held (Linux's high-water mark of its resident set). */
function peakRssBytes(service: ServiceProcess): number {
  const status = readFileSync(`/proc/${service.child.pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

describe("a poison stream entry", () => {
  let redis: RedisServer;
  let db: Redis;
  /** Validates as deployed (depth 32). */
  let checked: ServiceProcess;
  /** Lets any depth through validation, so the encoder itself meets the poison. */
  let unchecked: ServiceProcess;
  let inbox: Notification[];

  beforeAll(async () => {
    redis = await startRedis();
    db = redisClient(redis.url);
    const [chat, a, b] = await Promise.all([
      startService("chat", { env: { REDIS_URL: redis.url } }),
      startNotifier(redis.url),
      startNotifier(redis.url, { NOTIFIER_MAX_DATA_DEPTH: "100000", NOTIFIER_STREAM: "unchecked:events" }),
    ]);
    checked = a;
    unchecked = b;
    const client = await connectClient(chat.url, "ann");
    inbox = record<Notification>(client, "notification");
    await joinRoom(client, "ok");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  const delivered = (ids: string[]) => waitFor(() => ids.every((id) => inbox.some((n) => n.eventId === id)), { what: () => `delivery of ${ids.join(", ")}` });

  it("dead-letters data nested 3000 deep, and delivers the entries behind it", async () => {
    const stream = "notifier:events";
    const poison = await xadd(db, stream, { room: "ok", type: "t", data: DEEP });
    const limit = await xadd(db, stream, { room: "ok", type: "t", data: JSON.stringify(nested(32)), id: "at-the-limit" });
    await xadd(db, stream, { room: "ok", type: "t", data: "{}", id: "behind-1" });
    await xadd(db, stream, { user: "ann", type: "t", data: "{}", id: "behind-2" });
    await delivered(["at-the-limit", "behind-1", "behind-2"]);
    await waitForNoPending(db, stream);
    const dead = await deadLetters(db, stream);
    expect(dead.map((d) => [d.entry, d.reason])).toEqual([[poison, "data: nests arrays or objects more than 32 deep"]]);
    expect(limit).toBeDefined();
  });

  it("dead-letters whatever the encoder refuses, for a room and for everyone, and delivers the entries behind it", async () => {
    const stream = "unchecked:events";
    const room = await xadd(db, stream, { room: "ok", type: "t", data: DEEP });
    const everyone = await xadd(db, stream, { broadcast: "1", type: "t", data: DEEP });
    await xadd(db, stream, { room: "ok", type: "t", data: "{}", id: "behind-3" });
    await xadd(db, stream, { broadcast: "1", type: "t", data: "{}", id: "behind-4" });
    await delivered(["behind-3", "behind-4"]);
    await waitForNoPending(db, stream);
    const dead = await deadLetters(db, stream);
    expect(dead.map((d) => d.entry)).toEqual([room, everyone]);
    for (const letter of dead) expect(letter.reason).toMatch(/^data: cannot be encoded \(Maximum call stack size exceeded\)/);
    expect(unchecked.child.exitCode).toBeNull();
  });

  it("answers the same data over HTTP with a 400 that says why, never a 503", async () => {
    const body = `{"type":"t","data":${DEEP}}`;
    for (const path of ["/v1/broadcast", "/v1/rooms/ok/events"]) {
      expect(await post(checked.url, path, body)).toEqual({
        status: 400,
        body: { error: { code: "bad_request", message: "data: nests arrays or objects more than 32 deep" } },
      });
      const refused = await post(unchecked.url, path, body);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toEqual({ code: "bad_request", message: expect.stringMatching(/^data: cannot be encoded/) });
    }
    expect((await post(checked.url, "/v1/rooms/ok/events", { type: "t", data: {}, id: "after-http" })).status).toBe(202);
    await delivered(["after-http"]);
  });
});

describe("oversized stream entries", () => {
  const STREAM = "big:events";
  const ENTRIES = 25;
  const ENTRY_BYTES = 4 * 1024 * 1024;
  /** How far the notifier's peak RSS may rise: its bound is a batch (1 MiB) plus one cut entry. */
  const GROWTH_BOUND = 48 * 1024 * 1024;
  let redis: RedisServer;
  let db: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    db = redisClient(redis.url);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  it(`dead-letters ${ENTRIES} entries of 4 MiB, capped, within ${GROWTH_BOUND / 2 ** 20} MiB of the notifier's memory, and delivers the entry behind them`, async () => {
    const chat = await startService("chat", { env: { REDIS_URL: redis.url } });
    const notifier = await startNotifier(redis.url, { NOTIFIER_STREAM: STREAM });
    const client = await connectClient(chat.url, "bob");
    const inbox = record<Notification>(client, "notification");
    await joinRoom(client, "ok");
    await notifier.waitForLog((l) => /stream consumer started/.test(l.msg));
    const before = peakRssBytes(notifier);

    // Control characters: each one took 6 bytes once escaped into a dead letter.
    const huge = "\u0001".repeat(ENTRY_BYTES);
    const pipeline = db.pipeline();
    for (let i = 0; i < ENTRIES; i++) pipeline.xadd(STREAM, "*", "room", "ok", "type", "t", "data", huge);
    pipeline.xadd(STREAM, "*", "room", "ok", "type", "t", "data", '{"after":"the big ones"}', "id", "after-big");
    await pipeline.exec();

    await waitFor(() => inbox.some((n) => n.eventId === "after-big"), { timeoutMs: 30_000, what: "the entry behind the big ones" });
    await waitForNoPending(db, STREAM);
    const growth = peakRssBytes(notifier) - before;
    console.log(`notifier peak RSS rose by ${(growth / 2 ** 20).toFixed(1)} MiB for ${ENTRIES} entries of 4 MiB`);
    expect(growth).toBeLessThan(GROWTH_BOUND);

    const dead = await deadLetters(db, STREAM);
    expect(dead).toHaveLength(ENTRIES);
    for (const letter of dead) {
      expect(letter.reason).toBe(`data: is ${ENTRY_BYTES} bytes, more than the 65536 allowed`);
      // The value is cut to 2048 characters and says how long it was: about 12 KiB once escaped.
      expect(letter.fields.length).toBeLessThan(16 * 1024);
      expect(letter.fields).toMatch(new RegExp(`… \\(${ENTRY_BYTES} bytes in all\\)"\\]\\]$`));
    }
    expect(notifier.logs.filter((l) => l.level >= 50)).toEqual([]);
  }, 60_000);
});
