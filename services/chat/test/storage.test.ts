import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import { Redis } from "ioredis";
import { closeAllClients, connectClient, startRedis, startService, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";
import type { Ack, ProtocolError, ReplayedEntry } from "@chat/shared";

/**
 * Issue 24 #4: room logs had no storage quota (one account stored about 1 GB an hour), and a
 * control character took a 6-byte JSON escape in storage. Real chat pods, a real Redis.
 */

type SendAck = Ack<{ id: string }>;
type JoinAck = Ack<{ messages: ReplayedEntry[] }>;

const USER_BYTES = 20_000;
const ROOM_BYTES = 50_000;
const TOTAL_BYTES = 100_000;
const TEXT = "x".repeat(1000);

async function join(socket: Socket, room: string): Promise<JoinAck> {
  const ack: JoinAck = await socket.emitWithAck("join", { room });
  if (!ack.ok) throw new Error(`join ${room}: ${ack.error.message}`);
  return ack;
}

/** Sends 1000-character messages to `room` until one is refused: how many were stored, and why it stopped. */
async function fill(socket: Socket, room: string): Promise<{ stored: number; refusal: ProtocolError }> {
  await join(socket, room);
  for (let stored = 0; stored < 200; stored++) {
    const ack: SendAck = await socket.emitWithAck("message", { room, text: TEXT });
    if (!ack.ok) return { stored, refusal: ack.error };
  }
  throw new Error(`no quota stopped ${room} after 200 messages`);
}

const refusedBy = (owner: string, bytes: number) => ({
  code: "rate_limited",
  message: expect.stringMatching(new RegExp(`^${owner} stored the most allowed \\(${bytes} bytes per 3600 s\\); retry in \\d+ ms$`)),
  retryAfterMs: expect.any(Number),
});

describe("storage quotas", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      RATE_LIMIT_MESSAGES_PER_SECOND: "0",
      QUOTA_USER_BYTES: String(USER_BYTES),
      QUOTA_ROOM_BYTES: String(ROOM_BYTES),
      QUOTA_TOTAL_BYTES: String(TOTAL_BYTES),
    };
    pods = await Promise.all([startService("chat", { env }), startService("chat", { env })]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  // The three run in order: each spends part of the room's and the total's bytes for the next.
  it("refuses a user over their bytes per window, on every pod, with when to retry, and lets others send", async () => {
    const ann = await connectClient(pods[0]!.url, "ann");
    const { stored, refusal } = await fill(ann, "a");
    // About 1060 bytes each once stored (the text, the room and the sender).
    expect(stored).toBeGreaterThanOrEqual(17);
    expect(stored).toBeLessThanOrEqual(19);
    expect(refusal).toEqual(refusedBy("you have", USER_BYTES));
    expect(refusal.retryAfterMs).toBeGreaterThan(3_500_000);

    // The other pod learns that ann's quota is spent from the charge of her next message there:
    // that one message is stored, then she is refused there too.
    const elsewhere = await fill(await connectClient(pods[1]!.url, "ann"), "a");
    expect(elsewhere.stored).toBeLessThanOrEqual(1);
    expect(elsewhere.refusal).toEqual(refusedBy("you have", USER_BYTES));
    const bob = await connectClient(pods[1]!.url, "bob");
    await join(bob, "a");
    expect(await bob.emitWithAck("message", { room: "a", text: "hi" })).toMatchObject({ ok: true });
  });

  it("refuses a room over its bytes per window, whoever sends, and leaves other rooms open", async () => {
    const bob = await connectClient(pods[0]!.url, "bob2");
    expect((await fill(bob, "a")).refusal).toEqual(refusedBy("you have", USER_BYTES));
    // Room a holds about 40 KB now: carol has bytes of her own left, the room has not.
    const carol = await connectClient(pods[1]!.url, "carol");
    const { stored, refusal } = await fill(carol, "a");
    expect(stored).toBeLessThan(12);
    expect(refusal).toEqual(refusedBy("this room has", ROOM_BYTES));
    await join(carol, "b");
    expect(await carol.emitWithAck("message", { room: "b", text: TEXT })).toMatchObject({ ok: true });
  });

  it("refuses everyone once the deployment's total budget is spent", async () => {
    const users = ["dave", "erin", "frank", "grace"].map((name, i) => connectClient(pods[i % 2]!.url, name));
    const refusals: ProtocolError[] = [];
    for (const [i, user] of users.entries()) refusals.push((await fill(await user, `room-${i}`)).refusal);
    // About 60 KB spent before: dave and erin fill their own quotas, the total stops frank.
    expect(refusals.slice(0, 2)).toEqual([refusedBy("you have", USER_BYTES), refusedBy("you have", USER_BYTES)]);
    expect(refusals[2]).toEqual(refusedBy("this chat has", TOTAL_BYTES));
    expect(refusals[3]).toEqual(refusedBy("this chat has", TOTAL_BYTES));
  });
});

describe("how room logs store text", () => {
  let redis: RedisServer;
  let db: Redis;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url);
    pod = await startService("chat", { env: { REDIS_URL: redis.url } });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  it("stores a control character as its own byte, not a 6-byte escape, and gives the text back intact", async () => {
    const text = `${"\u0001".repeat(4000 - 14)}\t"quoted"\\\n`;
    const ann = await connectClient(pod.url, "ann");
    await join(ann, "ctl");
    const sent: SendAck = await ann.emitWithAck("message", { room: "ctl", text });
    expect(sent.ok).toBe(true);

    const entries = (await db.xrange("chat:log:{ctl}", "-", "+")) as [string, string[]][];
    const fields = entries[0]![1];
    const stored = fields[fields.indexOf("b") + 1]!;
    // 4000 characters and the room and sender: under 4.1 KB, where escapes took about 24 KB.
    expect(Buffer.byteLength(stored)).toBeLessThan(4100);

    const bob = await connectClient(pod.url, "bob");
    const { messages } = (await join(bob, "ctl")) as JoinAck & { ok: true };
    expect(messages.map((m) => m.text)).toEqual([text]);
  });

  it("reads entries stored as escaped JSON before the change, so a rolling upgrade loses nothing", async () => {
    const old = JSON.stringify({ room: "legacy", text: "a\u0001b\nc", user: { id: "ann", name: "ann" } });
    expect(old).toContain("\\u0001");
    await db.xadd("chat:log:{legacy}", "*", "e", "message", "p", "0-0", "f", "id", "b", old);
    const bob = await connectClient(pod.url, "bob-legacy");
    const { messages } = (await join(bob, "legacy")) as JoinAck & { ok: true };
    expect(messages.map((m) => m.text)).toEqual(["a\u0001b\nc"]);
  });
});
