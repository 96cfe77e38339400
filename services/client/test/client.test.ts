import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
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
import type { Ack, JoinAck } from "@chat/shared";
import { ChatClient, type ChatMessage, type Notification } from "@chat/client";

const API_KEY = "client-test-key-0123456789";

async function send(socket: Socket, room: string, text: string): Promise<string> {
  const ack: Ack<{ id: string }> = await socket.emitWithAck("message", { room, text });
  if (!ack.ok) throw new Error(ack.error.message);
  return ack.id;
}

async function notify(notifier: ServiceProcess, room: string, id: string): Promise<void> {
  const response = await fetch(`${notifier.url}/v1/rooms/${room}/events`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ id, type: "order.shipped", data: { id } }),
  });
  expect(response.status).toBe(202);
}

/** Every room entry a client delivers, messages and room notifications alike, in delivery order. */
function entriesOf(client: ChatClient): (ChatMessage | Notification)[] {
  const seen: (ChatMessage | Notification)[] = [];
  client.on("message", (m) => seen.push(m));
  client.on("notification", (n) => n.room !== undefined && seen.push(n));
  return seen;
}

describe("@chat/client against 1 chat pod and the notifier on Redis", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;
  let notifier: ServiceProcess;
  let other: ServiceProcess;
  let ann: Socket;

  beforeAll(async () => {
    redis = await startRedis();
    // A small catch-up cap, so that catching up on 130 entries takes several pages.
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES_PER_SECOND: "0", CATCH_UP_MAX_ENTRIES: "20", RATE_LIMIT_EVENTS_PER_SECOND: "0" };
    [pod, other, notifier] = await Promise.all([
      startService("chat", { env, pod: "chat-a" }),
      startService("chat", { env, pod: "chat-b" }),
      startService("notifier", { env: { REDIS_URL: redis.url, NOTIFIER_API_KEYS: API_KEY } }),
    ]);
    ann = await connectClient(pod.url, "ann");
  });

  afterAll(async () => {
    closeAllChatClients();
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("returns the catch-up from a join() called right after new ChatClient(...), every time", async () => {
    await ann.emitWithAck("join", { room: "seeded" });
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(await send(ann, "seeded", `s${i}`));
    for (let attempt = 0; attempt < 8; attempt++) {
      const client = new ChatClient(pod.url, { auth: { name: `early-${attempt}` }, socket: { transports: ["websocket"], forceNew: true } });
      try {
        const { entries, complete } = await client.join("seeded");
        expect(entries.map((e) => e.id)).toEqual(sent);
        expect(complete).toBe(true);
      } finally {
        client.close();
      }
    }
  });

  it("pages through a catch-up larger than one answer after a reconnect, with no gap", async () => {
    const bob = await connectChatClient(pod.url, "bob");
    const seen = entriesOf(bob);
    const gaps: string[] = [];
    bob.on("gap", ({ room }) => gaps.push(room));
    await bob.join("paged");
    await ann.emitWithAck("join", { room: "paged" });
    const before = await send(ann, "paged", "before");
    await waitFor(() => bob.lastId("paged") === before, { what: "bob to see the first message" });
    bob.close();
    const missed: string[] = [];
    for (let i = 0; i < 130; i++) missed.push(await send(ann, "paged", `missed ${i}`));
    bob.reconnect();
    await waitFor(() => bob.lastId("paged") === missed.at(-1), { what: "bob to catch up on 130 messages" });
    expect(seen.map((e) => e.id)).toEqual([before, ...missed]);
    expect(gaps).toEqual([]);
  });

  it("keeps one id per entry in a room mixing messages and notifications, through a reconnect", async () => {
    const cat = await connectChatClient(pod.url, "cat");
    const seen = entriesOf(cat);
    await cat.join("mixed");
    await ann.emitWithAck("join", { room: "mixed" });
    const m1 = await send(ann, "mixed", "one");
    await notify(notifier, "mixed", "order-1234-shipped");
    await waitFor(() => seen.length === 2, { what: "a message and a notification" });
    const live = seen[1] as Notification;
    // Live: `id` is the room-log id, chained by `prev` like a message's; the event's id is `eventId`.
    expect(live).toMatchObject({ eventId: "order-1234-shipped", prev: m1, room: "mixed", type: "order.shipped" });
    expect(live.id).toMatch(/^\d+-\d+$/);
    expect(live.logId).toBe(live.id);
    expect(cat.lastId("mixed")).toBe(live.id);

    cat.close();
    await notify(notifier, "mixed", "order-1235-shipped");
    const m2 = await send(ann, "mixed", "two");
    await notify(notifier, "mixed", "order-1236-shipped");
    cat.reconnect();
    await waitFor(() => seen.length === 5, { what: "the 3 entries missed while away" });
    expect(seen.map((e) => ("eventId" in e ? e.eventId : e.text))).toEqual(["one", "order-1234-shipped", "order-1235-shipped", "two", "order-1236-shipped"]);
    expect(seen[3]!.id).toBe(m2);
    // One unbroken chain of ids, whatever the kind of entry.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.prev).toBe(seen[i - 1]!.id);
    const caught = seen[2] as Notification;
    expect(caught.logId).toBe(caught.id);

    // The id a client keeps is accepted as `since` by a plain socket too.
    const plain = await connectClient(pod.url, "dan");
    const ack: Ack<JoinAck> = await plain.emitWithAck("join", { room: "mixed", since: seen[1]!.id });
    expect(ack).toMatchObject({ ok: true, complete: true, gap: false });
    expect(ack.ok && ack.messages.map((e) => e.id)).toEqual(seen.slice(2).map((e) => e.id));
    expect(ack.ok && ack.messages[0]).toMatchObject({ event: "notification", eventId: "order-1235-shipped", logId: seen[2]!.id });
  });

  it("scrolls back through a room written on another pod with history {before}", async () => {
    await ann.emitWithAck("join", { room: "scroll" });
    const sent: string[] = [];
    for (let i = 0; i < 45; i++) sent.push(await send(ann, "scroll", `s${i}`));
    const eve = await connectChatClient(other.url, "eve");
    await eve.join("scroll");
    const pages = [await eve.history("scroll", { limit: 20 })];
    while (pages[0]!.more) pages.unshift(await eve.history("scroll", { before: pages[0]!.cursor!, limit: 20 }));
    expect(pages.flatMap((p) => p.entries.map((e) => e.id))).toEqual(sent);
    expect(pages.map((p) => p.entries.length)).toEqual([5, 20, 20]);
    expect(pages[0]).toMatchObject({ complete: true, gap: false, more: false });
    expect(pages[0]!.entries[0]).toMatchObject({ event: "message", text: "s0", room: "scroll" });
  });
});
