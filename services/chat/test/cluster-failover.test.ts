import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import type { ChatClient } from "@chat/client";
import {
  closeAllChatClients,
  connectChatClient,
  startRedisCluster,
  startService,
  stopAllServices,
  waitFor,
  type RedisCluster,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { busRoomChannel, compareLogIds, createLogger, createRedisClusterClient, createRedisRoomLog, slotOf } from "@chat/shared";

const ROOMS = Array.from({ length: 12 }, (_, i) => `failover-${i}`);
/** How long before a master's SIGKILL an acked message may not have reached its replica (docs/deploy.md). */
const LOSS_WINDOW_MS = 1000;

interface RoomTraffic {
  /** Acked ids, in the order the acks came (one sender per room, one message at a time). */
  acked: string[];
  /** When each ack came. */
  ackedAt: number[];
  /** Sends that failed after the client's retries. */
  failures: number;
  /** What the room's reader on another pod got, in order. */
  received: string[];
}

/*
 * The chat on a real Redis Cluster (3 masters, one replica each) through 3 chat pods: one master
 * is SIGKILLed while a sender in each of 12 rooms sends steadily, one message at a time, and a
 * reader on another pod reads. Rooms whose slots are on the other masters keep being acked
 * throughout; the failed master's rooms resume once its replica is promoted; every reader gets
 * every acked message once, in order, and an acked message is missing from the log only if it
 * was acked in the last moment before the kill (replication is asynchronous and a cluster has no
 * WAIT: docs/deploy.md states the window).
 */
describe("3 chat pods on a 3-master, 3-replica Redis Cluster, losing a master", () => {
  let cluster: RedisCluster;
  let redis: Cluster;
  let pods: ServiceProcess[];
  let senders: ChatClient[];
  let readers: ChatClient[];
  const traffic = new Map<string, RoomTraffic>(ROOMS.map((room) => [room, { acked: [], ackedAt: [], failures: 0, received: [] }]));

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 2000 });
    redis = createRedisClusterClient(
      { kind: "cluster", nodes: cluster.startupNodes.slice(0, 1) },
      {},
      { role: "test", log: createLogger({ service: "test", pod: "test", level: "silent" }) },
    );
    await waitFor(() => redis.status === "ready", { timeoutMs: 20_000, what: "the cluster client to be ready" });
    const env = { ...cluster.env, RATE_LIMIT_EVENTS_PER_SECOND: "0", QUOTA_USER_BYTES: "0", QUOTA_ROOM_BYTES: "0", QUOTA_TOTAL_BYTES: "0" };
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env })));
    senders = await Promise.all(ROOMS.map((room, i) => connectChatClient(pods[i % 3]!.url, `sender-${i}`)));
    readers = await Promise.all(ROOMS.map((room, i) => connectChatClient(pods[(i + 1) % 3]!.url, `reader-${i}`)));
    for (const [i, room] of ROOMS.entries()) {
      readers[i]!.on("message", (m) => void (m.room === room && traffic.get(room)!.received.push(m.id)));
      await Promise.all([senders[i]!.join(room), readers[i]!.join(room)]);
    }
  });

  afterAll(async () => {
    closeAllChatClients();
    await stopAllServices();
    redis?.disconnect();
    await cluster?.dispose();
  });

  it("keeps acking rooms on the other masters, resumes the failed master's rooms, and every reader gets every acked message once, in order", async () => {
    // The master of each room's slot (its log's keys share the slot of the room's channel).
    const ownerPort = (room: string) => Number(redis.slots[slotOf(busRoomChannel(room))]![0]!.split(":")[1]);
    const victim: RedisServer = cluster.nodes.find((n) => n.port === ownerPort(ROOMS[0]!))!;
    const onVictim = ROOMS.filter((room) => ownerPort(room) === victim.port);
    const elsewhere = ROOMS.filter((room) => ownerPort(room) !== victim.port);
    expect(onVictim.length).toBeGreaterThan(0);
    expect(elsewhere.length).toBeGreaterThan(0);

    let running = true;
    const loops = ROOMS.map(async (room, i) => {
      const state = traffic.get(room)!;
      for (let n = 0; running; n++) {
        try {
          state.acked.push((await senders[i]!.send(room, `m${n}`)).id);
          state.ackedAt.push(Date.now());
        } catch {
          state.failures++;
        }
        // About 6 a second: under the default RATE_LIMIT_MESSAGES_PER_SECOND (10), which stays on.
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    });
    const count = (rooms: string[]) => rooms.reduce((sum, room) => sum + traffic.get(room)!.acked.length, 0);
    await waitFor(() => ROOMS.every((room) => traffic.get(room)!.acked.length >= 5), { timeoutMs: 20_000, what: "every room to be acked before the kill" });

    const killedAt = Date.now();
    await victim.stop({ kill: true });
    await waitFor(async () => !(await cluster.masters()).includes(victim) && (await cluster.masters()).length === 3, {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: "the failed master's replica to take over",
    });
    const promotedAt = Date.now();
    const atPromotion = count(onVictim);
    await waitFor(() => count(onVictim) >= atPromotion + 5 * onVictim.length, { timeoutMs: 30_000, what: "the failed master's rooms to be acked again" });
    const resumedAt = Date.now();
    running = false;
    await Promise.all(loops);

    // Rooms on the other masters were acked while the failed slots had no master.
    const duringFailover = elsewhere.map((room) => traffic.get(room)!.ackedAt.filter((at) => at > killedAt && at < promotedAt).length);
    const roomLog = createRedisRoomLog(redis, { busMode: "sharded" });
    const lost: string[] = [];
    for (const room of ROOMS) {
      const stored = new Set((await roomLog.read(room, { limit: 1000 })).entries.map((e) => e.id));
      lost.push(...traffic.get(room)!.acked.filter((id) => !stored.has(id)));
    }
    // Every reader holds every acked message that is stored, once, in log order (it catches up after a gap).
    await waitFor(() => ROOMS.every((room) => traffic.get(room)!.acked.every((id) => lost.includes(id) || traffic.get(room)!.received.includes(id))), {
      timeoutMs: 20_000,
      what: "every reader to hold every stored acked message",
    });
    console.info(
      `chat on a cluster, master SIGKILLed: replica promoted +${promotedAt - killedAt} ms, the failed slots' rooms acked again by +${resumedAt - killedAt} ms; ` +
        `acks on the other masters' rooms meanwhile: ${duringFailover.join(", ")}; failed sends: ` +
        `${onVictim.reduce((n, r) => n + traffic.get(r)!.failures, 0)} on its rooms, ${elsewhere.reduce((n, r) => n + traffic.get(r)!.failures, 0)} elsewhere; acked lost: ${lost.length}`,
    );
    // Each of them was acked while the failed slots had no master (slower than before the kill:
    // figures printed above and recorded in docs/deploy.md), and none of their sends failed.
    expect(duringFailover.every((acks) => acks > 0)).toBe(true);
    expect(elsewhere.map((room) => traffic.get(room)!.failures)).toEqual(elsewhere.map(() => 0));
    for (const room of ROOMS) {
      const received = traffic.get(room)!.received;
      for (let i = 1; i < received.length; i++) expect(compareLogIds(received[i - 1]!, received[i]!)).toBeLessThan(0);
    }
    expect(lost.filter((id) => Number(id.split("-")[0]) < killedAt - LOSS_WINDOW_MS)).toEqual([]);
  });
});
