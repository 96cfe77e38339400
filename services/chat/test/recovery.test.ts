import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatClient, ChatMessage } from "@chat/client";
import {
  REDIS_ENGINES,
  closeAllChatClients,
  connectChatClient,
  startBalancer,
  startRedis,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type Balancer,
  type RedisEngine,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { compareLogIds } from "@chat/shared";

const CLIENTS = 300;
const ROOM = "stream";

/** Sends from `senders` every `everyMs` until stopped; records what was acked and what failed. */
function steadyTraffic(senders: ChatClient[], everyMs: number) {
  const acked: string[] = [];
  const failed: unknown[] = [];
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    for (const sender of senders) {
      const n = sent++;
      const p = sender.send(ROOM, `msg ${n}`).then(
        ({ id }) => void acked.push(id),
        (err: unknown) => void failed.push(err),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  }, everyMs);
  return {
    acked,
    failed,
    sent: () => sent,
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

function expectExactlyOnceInOrder(inboxes: ChatMessage[][], acked: string[]): void {
  const expected = [...acked].sort(compareLogIds);
  for (const inbox of inboxes) {
    const ids = inbox.map((m) => m.id);
    // Strictly increasing: in order and no duplicates.
    for (let i = 1; i < ids.length; i++) expect(compareLogIds(ids[i - 1]!, ids[i]!)).toBeLessThan(0);
    expect(ids).toEqual(expected);
  }
}

describe.each(REDIS_ENGINES)("losing a pod under load, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];
  let balancer: Balancer;
  let clients: ChatClient[];
  let inboxes: ChatMessage[][];

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env: redis.env })));
    balancer = await startBalancer(pods.map((p) => p.port));
    clients = [];
    for (let start = 0; start < CLIENTS; start += 50) {
      const batch = Array.from({ length: 50 }, (_, i) => connectChatClient(balancer.url, `user-${start + i}`, { sendAttempts: 12 }));
      clients.push(...(await Promise.all(batch)));
    }
    inboxes = clients.map((client) => {
      const inbox: ChatMessage[] = [];
      client.on("message", (m) => inbox.push(m));
      return inbox;
    });
    // Every join announces itself to the whole room: join in batches, as a crowd would trickle in.
    for (let start = 0; start < CLIENTS; start += 50) {
      await Promise.all(clients.slice(start, start + 50).map((c) => c.join(ROOM)));
    }
  });

  afterAll(async () => {
    closeAllChatClients();
    await balancer?.close();
    await stopAllServices();
    await redis?.dispose();
  });

  it("delivers every acked message to every client exactly once, in order, after a SIGKILL", async () => {
    expect([...balancer.connections().values()].every((n) => n >= CLIENTS / 3 - 1)).toBe(true);
    // Senders on every pod, the one about to die included.
    const traffic = steadyTraffic(clients.slice(0, 6), 100);
    await waitFor(() => traffic.acked.length >= 30, { what: "some traffic before the kill" });

    await pods[2]!.kill("SIGKILL");
    // Its clients reconnect through the balancer to the two survivors.
    await waitFor(() => clients.every((c) => c.socket.connected), { timeoutMs: 20_000, what: "every client to reconnect" });
    const afterKill = traffic.acked.length;
    await waitFor(() => traffic.acked.length >= afterKill + 30, { what: "traffic after recovery" });
    await traffic.stop();

    expect(traffic.failed.map((e) => `${(e as { code: string }).code}: ${(e as Error).message}`)).toEqual([]);
    await waitFor(() => inboxes.every((inbox) => inbox.length >= traffic.acked.length), {
      timeoutMs: 20_000,
      what: () => `every client to hold ${traffic.acked.length} messages (lowest: ${Math.min(...inboxes.map((i) => i.length))})`,
    });
    expectExactlyOnceInOrder(inboxes, traffic.acked);
  });
});

describe("restarting Redis under load", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let clients: ChatClient[];
  let inboxes: ChatMessage[][];

  beforeAll(async () => {
    redis = await startRedis({ aof: true });
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env: { REDIS_URL: redis.url } })));
    clients = await Promise.all(Array.from({ length: 60 }, (_, i) => connectChatClient(pods[i % 3]!.url, `user-${i}`, { sendAttempts: 1 })));
    inboxes = clients.map((client) => {
      const inbox: ChatMessage[] = [];
      client.on("message", (m) => inbox.push(m));
      return inbox;
    });
    await Promise.all(clients.map((c) => c.join(ROOM)));
  });

  afterAll(async () => {
    closeAllChatClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("loses no acked message, and answers every other send with an error", async () => {
    // One attempt per send: every send ends either acked or with an error, never silently.
    const traffic = steadyTraffic(clients.slice(0, 6), 50);
    await waitFor(() => traffic.acked.length >= 30, { what: "traffic before the restart" });
    await redis.stop({ kill: true });
    await waitFor(() => traffic.failed.length >= 6, { what: "sends to fail while Redis is down" });
    await redis.start();
    const afterRestart = traffic.acked.length;
    await waitFor(() => traffic.acked.length >= afterRestart + 30, { timeoutMs: 20_000, what: "traffic after the restart" });
    await traffic.stop();

    expect(traffic.acked.length + traffic.failed.length).toBe(traffic.sent());
    expect(traffic.failed.every((err) => ["unavailable", "timeout"].includes((err as { code: string }).code))).toBe(true);
    await waitFor(() => inboxes.every((inbox) => inbox.length >= traffic.acked.length), {
      timeoutMs: 20_000,
      what: () => `every client to hold ${traffic.acked.length} messages (lowest: ${Math.min(...inboxes.map((i) => i.length))})`,
    });
    // A send that failed may still have been stored (the answer was lost, not the write): such a
    // message reaches everyone too. What matters: every acked one does, once, in order.
    for (const inbox of inboxes) {
      const ids = inbox.map((m) => m.id);
      for (let i = 1; i < ids.length; i++) expect(compareLogIds(ids[i - 1]!, ids[i]!)).toBeLessThan(0);
      expect(traffic.acked.every((id) => ids.includes(id))).toBe(true);
    }
  });
});
