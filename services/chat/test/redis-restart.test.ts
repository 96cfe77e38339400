import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import { closeAllClients, connectMany, record, startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";
import type { Ack, ChatMessage } from "@chat/shared";

describe("a Redis restart", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let clients: Socket[];

  beforeAll(async () => {
    redis = await startRedis();
    pods = await Promise.all([0, 1].map((i) => startService("chat", { pod: `chat-${i}`, env: { REDIS_URL: redis.url } })));
    clients = await connectMany(
      pods.map((p) => p.url),
      20,
    );
    const acks: Ack[] = await Promise.all(clients.map((c) => c.emitWithAck("join", { room: "ops" })));
    expect(acks.every((a) => a.ok)).toBe(true);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("answers sends with unavailable while Redis is down, never with a false ack", async () => {
    await redis.stop();
    // Both pods notice the outage (their error handlers log it) and keep their clients.
    await Promise.all(pods.map((pod) => pod.waitForLog((l) => /redis connection lost/.test(l.msg))));
    const ack: Ack = await clients[0]!.emitWithAck("message", { room: "ops", text: "into the void" });
    expect(ack).toMatchObject({ ok: false, error: { code: "unavailable" } });
    expect(clients.every((c) => c.connected)).toBe(true);
    // Kubernetes stops sending new clients to a pod without Redis; the pod itself stays alive.
    for (const pod of pods) {
      expect((await fetch(`${pod.probeUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${pod.probeUrl}/livez`)).status).toBe(200);
    }
  });

  it("logs a failing probe once per change of state, with its reason and no stack trace, however often it is polled", async () => {
    for (let poll = 0; poll < 5; poll++) {
      for (const pod of pods) expect((await fetch(`${pod.probeUrl}/readyz`)).status).toBe(503);
    }
    for (const pod of pods) {
      // Each line marks a change of state (the start-up, before the bus subscribed, may add a pair), never a poll.
      const probeLines = pod.logs.filter((l) => l.probe === "ready").map((l) => [l.level, l.msg]);
      expect(probeLines).toContainEqual([40, "not ready: Redis is unreachable"]);
      probeLines.forEach((line, i) => i > 0 && expect(line).not.toEqual(probeLines[i - 1]));
      expect(pod.logs.filter((l) => l.msg === "healthcheck failed" || (l.err !== undefined && /stack/.test(JSON.stringify(l.err))))).toEqual([]);
    }
  });

  it("resumes cross-pod delivery after Redis comes back, without restarting the chat processes", async () => {
    await redis.start();
    await Promise.all(pods.map((pod) => pod.waitForLog((l) => /redis connection restored/.test(l.msg), 15_000)));
    await waitFor(async () => (await Promise.all(pods.map((p) => fetch(`${p.probeUrl}/readyz`)))).every((r) => r.status === 200), {
      what: "both pods to be ready again",
    });
    await Promise.all(pods.map((pod) => pod.waitForLog((l) => l.msg === "ready again" && l.was === "Redis is unreachable")));

    const inboxes = clients.map((c) => record<ChatMessage>(c, "message"));
    // The subscriber resubscribes right after it reconnects; send until a message crosses pods.
    await waitFor(
      async () => {
        const ack: Ack = await clients[0]!.emitWithAck("message", { room: "ops", text: "probe" });
        return ack.ok && inboxes[1]!.length > 0;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: "a message from pod 0 to reach pod 1" },
    );

    const sent: string[] = [];
    for (const sender of [clients[0]!, clients[1]!, clients[2]!, clients[3]!]) {
      const ack: Ack<{ id: string }> = await sender.emitWithAck("message", { room: "ops", text: "after restart" });
      if (!ack.ok) throw new Error(ack.error.message);
      sent.push(ack.id);
    }
    await waitFor(() => inboxes.every((inbox) => sent.every((id) => inbox.some((m) => m.id === id))), {
      what: "every client on both pods to get the 4 messages sent after the restart",
    });
    for (const inbox of inboxes) {
      expect(inbox.filter((m) => m.text === "after restart").map((m) => m.id)).toEqual(sent);
    }
    for (const pod of pods) expect(pod.child.exitCode).toBeNull();
  });
});
