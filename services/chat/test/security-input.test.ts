// Issue 24, what a connected client sends: each test performs an attack against real processes and
// shows it fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
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
import type { Ack, ChatMessage } from "@chat/shared";
import { busState } from "./bus-helpers.js";

type Refusal = Error & { data?: { code?: string } };

const join = (socket: Socket, room: string) => socket.emitWithAck("join", { room }) as Promise<Ack>;
const send = (socket: Socket, payload: Record<string, unknown>) => socket.emitWithAck("message", payload) as Promise<Ack<{ id: string; duplicate?: boolean }>>;

async function refusedName(url: string, name: string): Promise<Refusal> {
  return connectClient(url, name).then(
    (socket) => {
      socket.close();
      throw new Error(`the name ${JSON.stringify(name)} was accepted`);
    },
    (err: Refusal) => err,
  );
}

/** Calls of Lua scripts Redis has run so far. */
async function scriptCalls(db: Redis): Promise<number> {
  const stats = await db.info("commandstats");
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe("issue 24 #12: collisions with other users' keys and the server's own rooms", () => {
  let redis: RedisServer;
  let db: Redis;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    pod = await startService("chat", { env: { REDIS_URL: redis.url, BUS_MODE: "sharded", DEBUG_ENDPOINTS: "1" } });
  });

  afterAll(async () => {
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  it("keeps user org's clientMsgId team:m1 apart from user org:team's m1: both messages are stored and delivered", async () => {
    const org = await connectClient(pod.url, "org");
    const orgTeam = await connectClient(pod.url, "org:team");
    const reader = await connectClient(pod.url, "reader");
    await Promise.all([join(org, "dedupe"), join(orgTeam, "dedupe"), join(reader, "dedupe")]);
    const inbox = record<ChatMessage>(reader, "message");
    const first = await send(org, { room: "dedupe", text: "from org", clientMsgId: "team:m1" });
    const second = await send(orgTeam, { room: "dedupe", text: "from org:team", clientMsgId: "m1" });
    expect(first.ok && second.ok).toBe(true);
    if (first.ok && second.ok) {
      expect(second.duplicate).toBeUndefined();
      expect(second.id).not.toBe(first.id);
    }
    await waitFor(() => inbox.length === 2, { what: "both messages" });
    expect(inbox.map((m) => m.text)).toEqual(["from org", "from org:team"]);
  });

  it("refuses a message to the connection's own id room, which it never joined", async () => {
    const socket = await connectClient(pod.url, "sid-sender");
    const ack = await send(socket, { room: socket.id!, text: "into my own room" });
    expect(ack).toMatchObject({ ok: false, error: { code: "not_in_room" } });
    expect(await db.exists(`chat:log:{${socket.id}}`, `chat:log:{socket.io#/#${socket.id}#}`)).toBe(0);
  });

  it("refuses to join another connection's id room", async () => {
    const victim = await connectClient(pod.url, "victim");
    const spy = await connectClient(pod.url, "spy");
    expect(await join(spy, victim.id!)).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/own room/) } });
  });

  it("refuses a room named after the pod's adapter uid, so joining and leaving it cannot unsubscribe the pod's response channel", async () => {
    const before = await busState(pod);
    const response = before.expected.find((channel) => /^socket\.io#\/#[0-9a-f]{16}#$/.test(channel))!;
    const uid = response.slice("socket.io#/#".length, -1);
    const attacker = await connectClient(pod.url, "uid-attacker");
    expect(await join(attacker, uid)).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/reserved/) } });
    await attacker.emitWithAck("leave", { room: uid });
    expect((await busState(pod)).subscriptions).toContain(response);
    // The pod still answers cross-pod requests on it: a member list across pods still works.
    expect((await fetch(`${pod.url}/v1/rooms/dedupe/members`)).status).toBe(200);
  });
});

describe("issue 24 #13: names that impersonate, text that hides", () => {
  let pod: ServiceProcess;

  beforeAll(async () => {
    pod = await startService("chat");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
  });

  it.each([
    ["a Hangul filler U+3164", "\u3164"],
    ["a blank Braille pattern U+2800", "\u2800\u2800"],
    ["combining marks only", "\u0301\u0308"],
    ["an ideographic space and a filler", "\u3000\uFFA0"],
  ])("refuses a display name of %s: nothing visible", async (_what, name) => {
    const err = await refusedName(pod.url, name);
    expect(err.data?.code).toBe("unauthorized");
    expect(err.message).toMatch(/must have a visible character/);
  });

  it.each([
    ["a right-to-left override", "\u202Eecila"],
    ["a first-strong isolate", "bob\u2068"],
    ["a right-to-left mark", "\u200Fcarol"],
  ])("refuses a display name with %s", async (_what, name) => {
    const err = await refusedName(pod.url, name);
    expect(err.data?.code).toBe("unauthorized");
    expect(err.message).toMatch(/without control or bidi characters/);
  });

  it("strips NUL and bidi overrides from message text, and refuses a text of nothing else", async () => {
    const writer = await connectClient(pod.url, "writer");
    const reader = await connectClient(pod.url, "reader");
    await Promise.all([join(writer, "text"), join(reader, "text")]);
    const inbox = record<ChatMessage>(reader, "message");
    expect((await send(writer, { room: "text", text: "pay\u0000 \u202Egnp.exe\u202C now" })).ok).toBe(true);
    await waitFor(() => inbox.length === 1, { what: "the message" });
    expect(inbox[0]!.text).toBe("pay gnp.exe now");
    const empty = await send(writer, { room: "text", text: "\u0000\u202E" });
    expect(empty).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/empty once NUL and bidi controls are removed/) } });
    // Arabic and Hebrew need no controls, and keep their marks.
    expect((await send(writer, { room: "text", text: "שלום \u200Fمرحبا" })).ok).toBe(true);
    await waitFor(() => inbox.length === 2, { what: "the second message" });
    expect(inbox[1]!.text).toBe("שלום \u200Fمرحبا");
  });
});

// The storage quotas charge each stored message with scripts of their own (rate-limiter-flexible):
// off here, so that the script count is the append scripts alone.
const NO_QUOTAS = { QUOTA_USER_BYTES: "0", QUOTA_ROOM_BYTES: "0", QUOTA_TOTAL_BYTES: "0" };

describe("hardening: events per connection are limited in memory, before any Redis work", () => {
  let redis: RedisServer;
  let db: Redis;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    pod = await startService("chat", {
      env: { REDIS_URL: redis.url, RATE_LIMIT_EVENTS_PER_SECOND: "5", RATE_LIMIT_EVENTS_BURST: "5", RATE_LIMIT_MESSAGES_PER_SECOND: "1000", ...NO_QUOTAS },
    });
  });

  afterAll(async () => {
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  it("acks a flood beyond the limit rate_limited without running a Redis script for it", async () => {
    const socket = await connectClient(pod.url, "flooder");
    expect((await join(socket, "flood")).ok).toBe(true);
    // A full bucket again, whatever the join above took from it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = await scriptCalls(db);
    const started = Date.now();
    const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => send(socket, { room: "flood", text: `m${i}` })));
    const elapsedSeconds = (Date.now() - started) / 1000;
    const accepted = acks.filter((ack) => ack.ok).length;
    // The burst of 5, plus what the bucket refilled (5/s) while the 30 were read: on a loaded
    // machine reading them can take a while, so the bound is computed, not fixed.
    expect(accepted).toBeGreaterThanOrEqual(5);
    expect(accepted).toBeLessThanOrEqual(5 + Math.ceil(5 * elapsedSeconds) + 1);
    expect(accepted).toBeLessThan(30);
    for (const ack of acks.filter((a) => !a.ok)) {
      expect(ack).toMatchObject({ ok: false, error: { code: "rate_limited", message: expect.stringMatching(/too many events on this connection/) } });
    }
    // One append script per accepted message; none for the refused ones.
    expect((await scriptCalls(db)) - before).toBe(accepted);
    // The connection keeps working once the bucket has refilled.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await send(socket, { room: "flood", text: "later" })).ok).toBe(true);
  });
});
