import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import { Redis } from "ioredis";
import type { ChatClient, DmEvent, MessageDeletedEvent, MessageEditedEvent, ReadEvent, TypingEvent } from "@chat/client";
import {
  closeAllChatClients,
  closeAllClients,
  connectChatClient,
  connectClient,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { dmRoom, type Ack, type ChatMessage, type RoomSummary } from "@chat/shared";

// Issue 19's protocol additions across 2 pods on one Redis, through @chat/client, with JWTs so
// that `rooms` and `roles` claims apply. Each user's clients are on different pods.

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const key = new TextEncoder().encode(SECRET);

function token(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ name: sub[0]!.toUpperCase() + sub.slice(1), ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("1h")
    .sign(key);
}

async function connect(pod: ServiceProcess, sub: string, claims: Record<string, unknown> = {}): Promise<ChatClient> {
  return connectChatClient(pod.url, sub, { auth: { token: await token(sub, claims) } });
}

describe("typing, direct messages, edits, deletes and read markers across 2 pods", () => {
  let redis: RedisServer;
  let db: Redis;
  let pods: ServiceProcess[];
  let ann: ChatClient; // pod 0
  let bob: ChatClient; // pod 1
  let bobPhone: ChatClient; // pod 0

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url);
    const env = {
      REDIS_URL: redis.url,
      AUTH_MODE: "jwt",
      JWT_SECRET: SECRET,
      RATE_LIMIT_EVENTS_PER_SECOND: "0",
      RATE_LIMIT_MESSAGES_PER_SECOND: "0",
      QUOTA_USER_BYTES: "0",
      QUOTA_ROOM_BYTES: "0",
      QUOTA_TOTAL_BYTES: "0",
    };
    pods = await Promise.all([0, 1].map((i) => startService("chat", { pod: `chat-${i}`, env })));
    ann = await connect(pods[0]!, "ann");
    bob = await connect(pods[1]!, "bob", { rooms: ["lobby", "edits", "offline", "unread"] });
    bobPhone = await connect(pods[0]!, "bob");
  });

  afterAll(async () => {
    closeAllChatClients();
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  it("passes typing on to the others in the room, at most once per 2 s per user and room", async () => {
    await Promise.all([ann.join("lobby"), bob.join("lobby")]);
    const seen: TypingEvent[] = [];
    bob.on("typing", (e) => seen.push(e));
    const first = Date.now();
    await ann.typing("lobby");
    await ann.typing("lobby"); // within 2 s of the first: dropped, and still acked
    await waitFor(() => seen.length === 1, { what: "the first typing event" });
    // After the interval a third one passes; the second, sent before it on the same path, would
    // have arrived first: exactly two means it was dropped.
    await waitFor(() => Date.now() - first > 2200, { timeoutMs: 5000, what: "the typing interval to pass" });
    await ann.typing("lobby");
    await waitFor(() => seen.length >= 2, { what: "the third typing event" });
    expect(seen).toEqual([
      { room: "lobby", user: { id: "ann", name: "Ann" } },
      { room: "lobby", user: { id: "ann", name: "Ann" } },
    ]);
  });

  it("opens a direct conversation that both users reach, whatever their rooms claim, and nobody else", async () => {
    const offers: DmEvent[] = [];
    bob.on("dm", (e) => offers.push(e));
    bobPhone.on("dm", (e) => offers.push(e));
    const room = await ann.dm("bob");
    expect(room).toBe(dmRoom("ann", "bob"));
    await waitFor(() => offers.length === 2, { what: "the dm event on both of bob's connections" });
    expect(offers).toEqual([
      { room, user: { id: "ann", name: "Ann" } },
      { room, user: { id: "ann", name: "Ann" } },
    ]);
    // Bob's token only allows four rooms; the conversation is his all the same.
    const inbox: ChatMessage[] = [];
    bob.on("message", (m) => m.room === room && inbox.push(m));
    await bob.join(room);
    await ann.send(room, "just between us");
    await waitFor(() => inbox.length === 1, { what: "the direct message" });
    // Asking from the other side names the same room.
    expect(await bob.dm("ann")).toBe(room);
    const carol = await connectClient(pods[1]!.url, "carol", { auth: { token: await token("carol") } });
    const refused: Ack = await carol.emitWithAck("join", { room });
    expect(refused).toMatchObject({ ok: false, error: { code: "forbidden" } });
    const unknown: Ack = await carol.emitWithAck("join", { room: dmRoom("carol", "dave") });
    expect(unknown).toMatchObject({ ok: false, error: { code: "forbidden", message: expect.stringContaining("dm {user}") } });
    expect(await carol.emitWithAck("dm", { user: "carol" })).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });

  it("delivers edits and deletes live, lets only the author (or a moderator) make them, and removes a deleted text from Redis", async () => {
    await Promise.all([ann.join("edits"), bob.join("edits")]);
    const edits: MessageEditedEvent[] = [];
    const deletes: MessageDeletedEvent[] = [];
    bob.on("message_edited", (e) => edits.push(e));
    bob.on("message_deleted", (e) => deletes.push(e));
    const { id } = await ann.send("edits", "helo wrold");
    await ann.edit("edits", id, "hello world");
    await waitFor(() => edits.length === 1, { what: "the edit" });
    expect(edits[0]).toMatchObject({ room: "edits", id, text: "hello world" });
    expect(edits[0]!.editedAt).toBeGreaterThan(0);
    expect(edits[0]!.logId).not.toBe(id);

    await expect(bob.edit("edits", id, "mine now")).rejects.toMatchObject({ code: "forbidden" });
    await expect(bob.delete("edits", id)).rejects.toMatchObject({ code: "forbidden" });
    await expect(ann.delete("edits", "1-0")).rejects.toMatchObject({ code: "not_found" });

    const moderator = await connect(pods[1]!, "mod", { roles: ["moderator"] });
    await moderator.join("edits");
    await moderator.delete("edits", id);
    await waitFor(() => deletes.length === 1, { what: "the delete" });
    expect(deletes[0]).toMatchObject({ room: "edits", id });
    await expect(ann.edit("edits", id, "too late")).rejects.toMatchObject({ code: "not_found" });

    // Neither the message nor its edit is left in the room's log.
    const stored = JSON.stringify(await db.xrange("chat:log:{edits}", "-", "+"));
    expect(stored).not.toContain("helo wrold");
    expect(stored).not.toContain("hello world");
    expect(stored).toContain("message_deleted");
  });

  it("replays edits and deletes to a client that was offline, without reporting a gap, after it reconnects", async () => {
    await Promise.all([ann.join("offline"), bob.join("offline")]);
    const before = await ann.send("offline", "before");
    await waitFor(() => bob.lastId("offline") === before.id, { what: "bob to hold the last message" });
    const gaps: string[] = [];
    bob.on("gap", ({ room }) => gaps.push(room));
    const edits: MessageEditedEvent[] = [];
    const deletes: MessageDeletedEvent[] = [];
    const messages: string[] = [];
    bob.on("message_edited", (e) => e.room === "offline" && edits.push(e));
    bob.on("message_deleted", (e) => e.room === "offline" && deletes.push(e));
    bob.on("message", (m) => m.room === "offline" && messages.push(m.text));
    bob.socket.disconnect();

    const gone = await ann.send("offline", "oops, wrong room");
    const kept = await ann.send("offline", "typo hree");
    await ann.edit("offline", kept.id, "typo here");
    await ann.delete("offline", gone.id);

    const rejoined = new Promise<{ complete: boolean }>((resolve) => bob.on("joined", (info) => info.room === "offline" && resolve(info)));
    bob.socket.connect();
    expect((await rejoined).complete).toBe(true);
    expect(gaps).toEqual([]);
    expect(messages).toEqual(["typo hree"]);
    expect(edits.map((e) => [e.id, e.text])).toEqual([[kept.id, "typo here"]]);
    expect(deletes.map((e) => e.id)).toEqual([gone.id]);
  });

  it("keeps read markers per user and room, tells the user's other connections, and counts unread entries in join and rooms", async () => {
    await Promise.all([ann.join("unread"), bob.join("unread"), bobPhone.join("unread")]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await ann.send("unread", `m${i}`)).id);
    await waitFor(() => bob.lastId("unread") === ids[4], { what: "bob to hold every message" });

    const moved: ReadEvent[] = [];
    bobPhone.on("read", (e) => moved.push(e));
    expect(await bob.markRead("unread", ids[2]!)).toBe(ids[2]);
    await waitFor(() => moved.length === 1, { what: "the read marker on bob's phone" });
    expect(moved[0]).toEqual({ room: "unread", id: ids[2] });
    // A marker never moves back.
    expect(await bob.markRead("unread", ids[0]!)).toBe(ids[2]);

    const rejoin = await bob.join("unread");
    expect(rejoin).toMatchObject({ lastRead: ids[2], unread: 2 });
    const list = await bobPhone.roomList();
    const summary = list.find((r) => r.room === "unread");
    expect(summary).toMatchObject({ room: "unread", lastRead: ids[2], unread: 2, last: { id: ids[4], text: "m4", user: { id: "ann" } } });
    const dm = (await bob.roomList()).find((r) => r.room === dmRoom("ann", "bob"));
    expect(dm).toMatchObject({ dm: "ann" } satisfies Partial<RoomSummary>);

    // Past 99 the count stops at 100 ("99+").
    await Promise.all(Array.from({ length: 110 }, (_, i) => ann.send("unread", `bulk ${i}`)));
    expect((await bob.roomList()).find((r) => r.room === "unread")?.unread).toBe(100);
  });
});
