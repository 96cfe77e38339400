import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import type { Ack, ChatMessage, ReplayedEntry } from "@chat/shared";

type JoinAck = Ack<{ messages: ReplayedEntry[]; complete: boolean; gap: boolean; more: boolean }>;
type SendAck = Ack<{ id: string; ts: number; duplicate?: boolean }>;

async function send(socket: Socket, room: string, text: string, clientMsgId?: string): Promise<string> {
  const ack: SendAck = await socket.emitWithAck("message", clientMsgId ? { room, text, clientMsgId } : { room, text });
  if (!ack.ok) throw new Error(ack.error.message);
  return ack.id;
}

// The same behaviour with Redis (the scaled-out mode) and without it (the single node).
describe.each([
  ["with Redis", true],
  ["on a single node without Redis", false],
])("the room log %s", (_mode, withRedis) => {
  let redis: RedisServer | undefined;
  let pod: ServiceProcess;
  let ann: Socket;
  let bob: Socket;

  beforeAll(async () => {
    // Small stream nodes make MAXLEN ~ trim precisely enough to test with a cap of 20.
    redis = withRedis ? await startRedis({ args: ["--stream-node-max-entries", "5"] }) : undefined;
    pod = await startService("chat", {
      env: { REDIS_URL: redis?.url, HISTORY_MAX_ENTRIES: "20", HISTORY_ON_JOIN: "5", RATE_LIMIT_MESSAGES_PER_SECOND: "0" },
    });
    ann = await connectClient(pod.url, "ann");
    bob = await connectClient(pod.url, "bob");
    await ann.emitWithAck("join", { room: "log" });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("gives messages increasing ids chained by prev, and stamps them with their time", async () => {
    const inbox = record<ChatMessage>(ann, "message");
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await send(ann, "log", `m${i}`));
    await waitFor(() => inbox.length === 3, { what: "3 messages" });
    expect(inbox.map((m) => m.id)).toEqual(ids);
    expect(inbox.map((m) => m.prev)).toEqual(["0-0", ids[0], ids[1]]);
    expect(inbox.every((m) => m.ts === Number(m.id.split("-")[0]))).toBe(true);
  });

  it("returns the last messages on a join without since", async () => {
    for (let i = 3; i < 8; i++) await send(ann, "log", `m${i}`);
    const ack: JoinAck = await bob.emitWithAck("join", { room: "log" });
    expect(ack.ok && ack.messages.map((m) => m.text)).toEqual(["m3", "m4", "m5", "m6", "m7"]);
    expect(ack.ok && ack.messages[0]).toMatchObject({ event: "message", room: "log", user: { id: "ann", name: "ann" } });
    // Older history exists than what was returned.
    expect(ack.ok && ack.complete).toBe(false);
    await bob.emitWithAck("leave", { room: "log" });
  });

  it("returns every message after since, oldest first, and nothing else", async () => {
    const first: JoinAck = await bob.emitWithAck("join", { room: "log" });
    const lastSeen = first.ok ? first.messages.at(-1)!.id : "";
    await bob.emitWithAck("leave", { room: "log" });
    const missed = [await send(ann, "log", "while away 1"), await send(ann, "log", "while away 2")];
    const ack: JoinAck = await bob.emitWithAck("join", { room: "log", since: lastSeen });
    expect(ack.ok && ack.messages.map((m) => m.id)).toEqual(missed);
    expect(ack.ok && ack.complete).toBe(true);
  });

  it("says complete: false when the log no longer reaches back to since", async () => {
    const ack0: JoinAck = await bob.emitWithAck("join", { room: "log", since: "0-0" });
    expect(ack0.ok).toBe(true);
    const oldest = ack0.ok ? ack0.messages[0]!.id : "";
    for (let i = 0; i < 40; i++) await send(ann, "log", `flood ${i}`);
    const ack: JoinAck = await bob.emitWithAck("join", { room: "log", since: oldest });
    expect(ack.ok && ack.complete).toBe(false);
    // Trimmed, not capped: a gap, and nothing more to page.
    expect(ack).toMatchObject({ ok: true, gap: true, more: false });
    expect(ack.ok && ack.messages.length).toBeLessThanOrEqual(30);
    expect(ack.ok && ack.messages.at(-1)!.text).toBe("flood 39");
  });

  it("acks a retry with the same clientMsgId with the original id, and delivers it once", async () => {
    const inbox = record<ChatMessage>(bob, "message");
    const first: SendAck = await ann.emitWithAck("message", { room: "log", text: "once", clientMsgId: "retry-1" });
    const again: SendAck = await ann.emitWithAck("message", { room: "log", text: "once", clientMsgId: "retry-1" });
    expect(first.ok && again.ok).toBe(true);
    if (!first.ok || !again.ok) return;
    expect(again).toEqual({ ok: true, id: first.id, ts: first.ts, duplicate: true });
    const marker = await send(ann, "log", "marker");
    await waitFor(() => inbox.some((m) => m.id === marker), { what: "the marker" });
    expect(inbox.filter((m) => m.text === "once")).toHaveLength(1);
    // Another user may use the same clientMsgId: ids are per sender.
    const bobs: SendAck = await bob.emitWithAck("message", { room: "log", text: "mine", clientMsgId: "retry-1" });
    expect(bobs.ok && bobs.id !== first.id).toBe(true);
  });

  it("refuses a malformed since or clientMsgId", async () => {
    const join: JoinAck = await bob.emitWithAck("join", { room: "log", since: "yesterday" });
    expect(join.ok ? "" : join.error.code).toBe("bad_request");
    const msg: SendAck = await ann.emitWithAck("message", { room: "log", text: "x", clientMsgId: "has spaces" });
    expect(msg.ok ? "" : msg.error.message).toMatch(/clientMsgId/);
  });
});
