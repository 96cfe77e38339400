import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { io, type Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  metricValue,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, JoinAck, User } from "@chat/shared";

type Join = Ack<JoinAck>;

/** Joins served by a pod so far, whatever their answer. */
async function joinsServed(pod: ServiceProcess): Promise<number> {
  const text = await (await fetch(`${pod.probeUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("chat_joins_total{"))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

// Issue 24: what a client can do with `join` alone. The catch-up cap (#3) is proved in
// catch-up.test.ts; the per-user budget, ghost presence (#6) and parallel joins (#12) here.
describe("join under attack, on 2 pods in sharded mode", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      RATE_LIMIT_JOINS_PER_MINUTE: "0",
      RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: "0",
      MAX_ROOMS_PER_CONNECTION: "100",
    };
    pods = await Promise.all([
      startService("chat", { env, pod: "chat-a" }),
      startService("chat", { env, pod: "chat-b" }),
      // A third pod with a small per-user budget, on the same Redis.
      startService("chat", { env: { ...env, RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: "5" }, pod: "chat-c" }),
    ]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("leaves no ghost in presence when 20 clients join and disconnect at once", async () => {
    const before = (await joinsServed(pods[0]!)) + (await joinsServed(pods[1]!));
    for (let i = 0; i < 20; i++) {
      const socket = io(pods[i % 2]!.url, { auth: { name: `ghost-${i}` }, transports: ["websocket"], forceNew: true, reconnection: false });
      socket.once("connect", () => {
        socket.emit("join", { room: "haunted" }, () => undefined);
        // Drop the connection at once, as a network would: a Socket.IO DISCONNECT packet would
        // make the server ignore the join still queued before it.
        socket.io.engine.close();
      });
    }
    // Every join has been handled (whatever its answer) before presence is looked at.
    let served = 0;
    await waitFor(async () => (served = (await joinsServed(pods[0]!)) + (await joinsServed(pods[1]!)) - before) >= 20, {
      what: () => `20 joins served (${served} so far)`,
    });
    const watcher = await connectClient(pods[0]!.url, "watcher");
    const members = async () => {
      const ack: Join = await watcher.emitWithAck("join", { room: "haunted" });
      return ack.ok ? ack.members.map((m: User) => m.id) : [];
    };
    // A departed member's entry is removed when it leaves, not when its pod's TTL ends.
    await waitFor(async () => (await members()).length === 1, { what: "the ghosts to be gone" });
    expect(await members()).toEqual(["watcher"]);
  });

  it("accepts exactly MAX_ROOMS_PER_CONNECTION of 130 joins sent in parallel", async () => {
    const socket = await connectClient(pods[1]!.url, "hoarder");
    const acks: Join[] = await Promise.all(Array.from({ length: 130 }, (_, i) => socket.emitWithAck("join", { room: `p${i}` })));
    const codes = acks.map((ack) => (ack.ok ? "ok" : ack.error.code));
    expect(codes.filter((c) => c === "ok")).toHaveLength(100);
    expect(codes.filter((c) => c === "limit_exceeded")).toHaveLength(30);
    // The slots are real: one more join is still refused, and a leave frees one.
    expect(await socket.emitWithAck("join", { room: "one-more" })).toMatchObject({ ok: false, error: { code: "limit_exceeded" } });
    const joined = acks.map((ack, i) => (ack.ok ? `p${i}` : undefined)).find(Boolean)!;
    await socket.emitWithAck("leave", { room: joined });
    expect(await socket.emitWithAck("join", { room: "one-more" })).toMatchObject({ ok: true });
  });

  it("counts joins and history requests per user across pods, so reconnecting does not reset the budget", async () => {
    const pod = pods[2]!;
    const first = await connectClient(pod.url, "greedy");
    for (const room of ["g1", "g2", "g3"]) expect((await first.emitWithAck("join", { room })) as Join).toMatchObject({ ok: true });
    expect(await first.emitWithAck("history", { room: "g1" })).toMatchObject({ ok: true });
    first.close();
    // A new connection (a new socket id) spends from the same budget.
    const again = await connectClient(pod.url, "greedy");
    expect((await again.emitWithAck("join", { room: "g4" })) as Join).toMatchObject({ ok: true });
    const refused: Join = await again.emitWithAck("join", { room: "g5" });
    expect(refused).toMatchObject({ ok: false, error: { code: "rate_limited" } });
    expect(!refused.ok && refused.error.retryAfterMs).toBeGreaterThan(0);
    expect(!refused.ok && refused.error.message).toMatch(/too many joins and history requests by this user; retry in \d+ ms/);
    // Another user is not affected.
    const other = await connectClient(pod.url, "modest");
    expect((await other.emitWithAck("join", { room: "g5" })) as Join).toMatchObject({ ok: true });
    expect(await metricValue(pod, 'chat_rate_limited_total{kind="user_reads"}')).toBeGreaterThanOrEqual(1);
  });
});
