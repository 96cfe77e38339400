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
import { compareLogIds, type Ack } from "@chat/shared";

/** `chat_fanout_writes_total{path="..."}` of one pod. */
async function writes(pod: ServiceProcess, path: "direct" | "engine"): Promise<number> {
  const text = await (await fetch(`${pod.probeUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`chat_fanout_writes_total{path="${path}"} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

// A broadcast's frame is written straight to each recipient's TCP socket when nothing is queued
// before it (fanout.ts), and through Engine.IO otherwise. Whatever path each delivery takes, every
// member must get every message once, in the order of the room's log.
describe("room fan-out", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES_PER_SECOND: "0", RATE_LIMIT_EVENTS_PER_SECOND: "0" };
    pods = await Promise.all([startService("chat", { pod: "chat-a", env }), startService("chat", { pod: "chat-b", env })]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  async function joinAll(members: Socket[], room: string) {
    for (const m of members) expect(((await m.emitWithAck("join", { room })) as Ack).ok).toBe(true);
  }

  it("writes each message straight to the WebSocket members on every pod", async () => {
    const members = await Promise.all([0, 1, 2, 3].map((i) => connectClient(pods[i % 2]!.url, `direct-${i}`)));
    await joinAll(members, "direct");
    const before = await Promise.all(pods.map((p) => writes(p, "direct")));
    const inboxes = members.map((m) => record<{ text: string }>(m, "message"));
    for (let i = 0; i < 10; i++) {
      expect(((await members[i % 4]!.emitWithAck("message", { room: "direct", text: `m${i}` })) as Ack).ok).toBe(true);
    }
    await waitFor(() => inboxes.every((inbox) => inbox.length === 10), { what: () => `10 messages each (got ${inboxes.map((i) => i.length)})` });
    for (const inbox of inboxes) expect(inbox.map((m) => m.text)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    const after = await Promise.all(pods.map((p) => writes(p, "direct")));
    // Each pod wrote 10 messages to its 2 members; a delivery behind an ack in flight may go through Engine.IO.
    for (const [i, n] of after.entries()) expect(n - before[i]!).toBeGreaterThan(10);
  });

  it("delivers through Engine.IO to long-polling members, alongside WebSocket members", async () => {
    const polling = await connectClient(pods[0]!.url, "poller", { transports: ["polling"] });
    const ws = await connectClient(pods[0]!.url, "socketeer");
    await joinAll([polling, ws], "mixed");
    const engineBefore = await writes(pods[0]!, "engine");
    const inboxes = [polling, ws].map((m) => record<{ text: string }>(m, "message"));
    for (let i = 0; i < 5; i++) expect(((await ws.emitWithAck("message", { room: "mixed", text: `p${i}` })) as Ack).ok).toBe(true);
    await waitFor(() => inboxes.every((inbox) => inbox.length === 5), { what: () => `5 messages each (got ${inboxes.map((i) => i.length)})` });
    for (const inbox of inboxes) expect(inbox.map((m) => m.text)).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect((await writes(pods[0]!, "engine")) - engineBefore).toBeGreaterThanOrEqual(5);
  });

  it("keeps a burst complete and in log order when direct and Engine.IO writes interleave", async () => {
    // Every member also sends, so acks (always through Engine.IO) keep landing between the
    // broadcasts it receives, and both paths write to the same sockets.
    const members = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => connectClient(pods[i % 2]!.url, `burst-${i}`)));
    await joinAll(members, "burst");
    const inboxes = members.map((m) => record<{ id: string }>(m, "message"));
    const acks = (await Promise.all(
      Array.from({ length: 240 }, (_, i) => members[i % 6]!.emitWithAck("message", { room: "burst", text: `b${i}` })),
    )) as (Ack & { id: string })[];
    expect(acks.every((a) => a.ok)).toBe(true);
    const order = acks.map((a) => a.id).sort(compareLogIds);
    await waitFor(() => inboxes.every((inbox) => inbox.length >= 240), { what: () => `240 messages each (got ${inboxes.map((i) => i.length)})` });
    for (const inbox of inboxes) expect(inbox.map((m) => m.id)).toEqual(order);
  });

  it("puts every delivery on Engine.IO's path with FAST_PATH=off, and says so in chat_fast_path", async () => {
    const off = await startService("chat", { pod: "chat-off", env: { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES_PER_SECOND: "0", FAST_PATH: "off" } });
    const members = await Promise.all([0, 1].map((i) => connectClient(off.url, `off-${i}`)));
    await joinAll(members, "off");
    const inboxes = members.map((m) => record<{ text: string }>(m, "message"));
    for (let i = 0; i < 5; i++) expect(((await members[0]!.emitWithAck("message", { room: "off", text: `o${i}` })) as Ack).ok).toBe(true);
    await waitFor(() => inboxes.every((inbox) => inbox.length === 5), { what: () => `5 messages each (got ${inboxes.map((i) => i.length)})` });
    expect(await writes(off, "direct")).toBe(0);
    expect(await writes(off, "engine")).toBeGreaterThanOrEqual(10);
    const gauges = async (pod: ServiceProcess) =>
      (await (await fetch(`${pod.probeUrl}/metrics`)).text())
        .split("\n")
        .filter((l) => l.startsWith("chat_fast_path{"))
        .sort();
    expect(await gauges(off)).toEqual([
      'chat_fast_path{path="coalesce"} 0',
      'chat_fast_path{path="direct_write"} 0',
      'chat_fast_path{path="handle_write"} 0',
      'chat_fast_path{path="release_requests"} 0',
    ]);
    expect(await gauges(pods[0]!)).toEqual([
      'chat_fast_path{path="coalesce"} 1',
      'chat_fast_path{path="direct_write"} 1',
      'chat_fast_path{path="handle_write"} 1',
      'chat_fast_path{path="release_requests"} 1',
    ]);
  });
});
