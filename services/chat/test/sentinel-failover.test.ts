import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { ChatClient } from "@chat/client";
import {
  SENTINEL_MASTER,
  closeAllChatClients,
  connectChatClient,
  startRedisSentinel,
  startService,
  stopAllServices,
  waitFor,
  type RedisSentinelSet,
  type ServiceProcess,
} from "@chat/testkit";

const ROOM = "failover";
const API_KEY = "failover-key-0123456789";
const NO_LIMITS = {
  RATE_LIMIT_EVENTS_PER_SECOND: "0",
  RATE_LIMIT_MESSAGES_PER_SECOND: "0",
  QUOTA_USER_BYTES: "0",
  QUOTA_ROOM_BYTES: "0",
  QUOTA_TOTAL_BYTES: "0",
};

interface Outcome {
  startedAt: number;
  endedAt: number;
  id?: string;
  code?: string;
}

/** Sends from every sender every `everyMs` with one attempt each, so every send ends acked or failed, with its times. */
function steadyTraffic(senders: ChatClient[], everyMs: number) {
  const outcomes: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  let n = 0;
  const timer = setInterval(() => {
    for (const sender of senders) {
      const startedAt = Date.now();
      const p = sender.send(ROOM, `msg ${n++}`).then(
        ({ id }) => void outcomes.push({ startedAt, endedAt: Date.now(), id }),
        (err: unknown) => void outcomes.push({ startedAt, endedAt: Date.now(), code: (err as { code?: string }).code ?? String(err) }),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  }, everyMs);
  return {
    outcomes,
    acked: () => outcomes.filter((o) => o.id),
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/*
 * The master of a Sentinel deployment (2 replicas) is SIGKILLed under steady traffic through 3 chat pods and
 * the notifier, with REDIS_WAIT_REPLICAS=1: every acked message must still be in the log that
 * the promoted replica serves. The figures (how long sends failed, when they and delivery
 * resumed, what WAIT costs) are printed, and recorded in docs/deploy.md.
 */
describe("a Sentinel failover under steady traffic, with REDIS_WAIT_REPLICAS=1", () => {
  let sentinel: RedisSentinelSet;
  let pods: ServiceProcess[];
  let noWaitPod: ServiceProcess;
  let notifier: ServiceProcess;
  let clients: ChatClient[];
  let db: Redis;
  const arrivals = new Map<string, number>();

  beforeAll(async () => {
    // Two replicas: after the failover one is left to confirm the WAITs.
    sentinel = await startRedisSentinel({ replicas: 2 });
    // A log long enough to keep every entry of the run: the check below reads them all back.
    const keepAll = { HISTORY_MAX_ENTRIES: "1000000", HISTORY_MAX_AGE_SECONDS: "0" };
    const env = { ...sentinel.env, ...NO_LIMITS, ...keepAll, REDIS_WAIT_REPLICAS: "1", PRESENCE_TTL_SECONDS: "30" };
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env })));
    noWaitPod = await startService("chat", { pod: "chat-nowait", env: { ...env, REDIS_WAIT_REPLICAS: "0" } });
    notifier = await startService("notifier", {
      env: { ...sentinel.env, ...keepAll, REDIS_WAIT_REPLICAS: "1", NOTIFIER_API_KEYS: API_KEY, NOTIFIER_POLL_MS: "50" },
    });
    clients = await Promise.all(Array.from({ length: 30 }, (_, i) => connectChatClient(pods[i % 3]!.url, `user-${i}`, { sendAttempts: 1 })));
    await Promise.all(clients.map((c) => c.join(ROOM)));
    // The receiving client is on another pod than the senders it hears about.
    clients[29]!.on("message", (m) => arrivals.set(m.id, Date.now()));
    db = new Redis({ sentinels: sentinel.sentinelPorts.map((port) => ({ host: "127.0.0.1", port })), name: SENTINEL_MASTER, maxRetriesPerRequest: 1 });
    // It reconnects through the failover on its own; its errors meanwhile are expected.
    db.on("error", () => undefined);
  });

  afterAll(async () => {
    closeAllChatClients();
    db?.disconnect();
    await stopAllServices();
    await sentinel?.dispose();
  });

  it("measures what WAIT costs a send: sequential sends through a pod with and one without it", async () => {
    const withWait = clients[0]!;
    const withoutWait = await connectChatClient(noWaitPod.url, "user-nowait", { sendAttempts: 1 });
    await withoutWait.join(ROOM);
    const timed = async (client: ChatClient) => {
      const times: number[] = [];
      for (let i = 0; i < 100; i++) {
        const start = performance.now();
        await client.send(ROOM, `timed ${i}`);
        times.push(performance.now() - start);
      }
      return times;
    };
    const [waitTimes, plainTimes] = [await timed(withWait), await timed(withoutWait)];
    console.info(
      `send ack latency, median of 100 sequential sends: ${median(plainTimes).toFixed(2)} ms without WAIT, ${median(waitTimes).toFixed(2)} ms with WAIT 1`,
    );
    expect(waitTimes).toHaveLength(100);
    expect(plainTimes).toHaveLength(100);
  });

  it("loses no acked message when the master is SIGKILLed, and sends and delivery resume after the failover", async () => {
    const senders = clients.slice(0, 6);
    const traffic = steadyTraffic(senders, 50);
    const notifierAcked: string[] = [];
    let notifierFailed = 0;
    let n = 0;
    const notifierTimer = setInterval(() => {
      const id = `evt-${n++}`;
      fetch(`${notifier.url}/v1/rooms/${ROOM}/events`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ id, type: "tick", data: { n } }),
      }).then(
        (response) => (response.status < 300 ? notifierAcked.push(id) : notifierFailed++),
        () => notifierFailed++,
      );
    }, 100);
    await waitFor(() => traffic.acked().length >= 60, { what: "traffic before the kill" });

    const oldMaster = await sentinel.master();
    const killedAt = Date.now();
    await oldMaster.stop({ kill: true });
    await waitFor(async () => (await sentinel.master()) !== oldMaster, { timeoutMs: 30_000, intervalMs: 100, what: "the sentinels to promote the replica" });
    const promotedAt = Date.now();
    await waitFor(() => traffic.acked().filter((o) => o.startedAt > promotedAt).length >= 60, { timeoutMs: 30_000, what: "sends to be acked again" });
    clearInterval(notifierTimer);
    await traffic.stop();

    const failures = traffic.outcomes.filter((o) => o.code);
    const ackedAfter = traffic.acked().filter((o) => o.startedAt >= killedAt);
    const firstAckAfter = Math.min(...ackedAfter.map((o) => o.endedAt));
    const firstArrivalAfter = Math.min(...ackedAfter.map((o) => arrivals.get(o.id!) ?? Infinity));
    const stored = new Set((await db.xrange(`chat:log:{${ROOM}}`, "-", "+")).map(([id]) => id));
    const lost = traffic.acked().filter((o) => !stored.has(o.id!));
    // The notifier's room events carry the event's own id in their stored (encoded) body.
    const raw = (await db.xrangeBuffer(`chat:log:{${ROOM}}`, "-", "+")).map(([, fields]) => Buffer.concat(fields).toString("latin1")).join(" ");
    const storedEvents = new Set(raw.match(/evt-\d+/g));
    const notifierLost = notifierAcked.filter((id) => !storedEvents.has(id));
    console.info(
      [
        `failover figures: sentinels promoted the replica ${promotedAt - killedAt} ms after the SIGKILL`,
        `sends failed (${new Set(failures.map((f) => f.code)).size ? [...new Set(failures.map((f) => f.code))].join("/") : "none"}) for ${failures.length ? Math.max(...failures.map((f) => f.endedAt)) - Math.min(...failures.map((f) => f.startedAt)) : 0} ms (${failures.length} of ${traffic.outcomes.length} sends)`,
        `first ack of a send started after the kill: +${firstAckAfter - killedAt} ms; first delivery of one: +${firstArrivalAfter - killedAt} ms`,
        `acked lost: ${lost.length} of ${traffic.acked().length} chat sends, ${notifierLost.length} of ${notifierAcked.length} notifier events (${notifierFailed} refused)`,
      ].join("\n  "),
    );
    expect(failures.every((f) => ["unavailable", "timeout"].includes(f.code!))).toBe(true);
    expect(lost).toEqual([]);
    expect(notifierLost).toEqual([]);
  });

  it("keeps idempotency keys, presence and the notifier's consumer group across the failover", async () => {
    // Idempotency: a retry of a message acked before the failover is recognised, not stored twice.
    const first = await clients[3]!.send(ROOM, "once", { clientMsgId: "retry-me" });
    const again = await clients[3]!.send(ROOM, "once", { clientMsgId: "retry-me" });
    expect(again.id).toBe(first.id);
    // Presence: every member is still listed (the heartbeats rewrite what the failover lost).
    const joined = await clients[4]!.join(`${ROOM}-presence-check`);
    expect(joined).toBeDefined();
    const members = (await fetch(`${pods[0]!.url}/v1/rooms/${ROOM}/members`).then((r) => r.json())) as { members: { id: string }[] };
    expect(members.members.length).toBeGreaterThanOrEqual(30);
    // The consumer group: an entry added to the stream now is delivered to the room.
    await db.xadd("notifier:events", "*", "room", ROOM, "type", "after-failover", "data", "1", "id", "after-failover");
    await waitFor(async () => (await db.xrangeBuffer(`chat:log:{${ROOM}}`, "-", "+")).some(([, fields]) => Buffer.concat(fields).includes("after-failover")), {
      timeoutMs: 15_000,
      what: "the notifier to deliver a stream entry added after the failover",
    });
  });
});
