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
import type { Ack } from "@chat/shared";
import { compareLogIds } from "@chat/shared";

const MEMBERS = 5;
const BURST = 300;

// A burst that arrives faster than a socket's writes complete queues up behind the write in
// flight; those packets then leave together in one write (coalesce.ts). Nothing may be lost,
// duplicated or reordered on the way.
describe("write coalescing", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;
  let members: Socket[];

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", { pod: "chat-0", env: { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES_PER_SECOND: "0", RATE_LIMIT_EVENTS_PER_SECOND: "0" } });
    members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => connectClient(pod.url, `member-${i}`)));
    for (const m of members) expect(((await m.emitWithAck("join", { room: "burst" })) as Ack).ok).toBe(true);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("delivers a burst that queued up behind a write complete and in order, in fewer writes", async () => {
    const inboxes = members.map((m) => record<{ id: string; text: string }>(m, "message"));
    const acks = (await Promise.all(Array.from({ length: BURST }, (_, i) => members[0]!.emitWithAck("message", { room: "burst", text: `m${i}` })))) as (Ack & {
      id: string;
    })[];
    expect(acks.every((a) => a.ok)).toBe(true);
    const order = acks.map((a) => a.id).sort(compareLogIds);

    await waitFor(() => inboxes.every((inbox) => inbox.length >= BURST), { what: () => `${BURST} messages each (got ${inboxes.map((i) => i.length)})` });
    for (const inbox of inboxes) expect(inbox.map((m) => m.id)).toEqual(order);
    // The burst did queue up, so the coalesced path is the one that delivered (part of) it: the
    // packets it carried took fewer writes than one each, at least two packets a write.
    // One scrape, so that the two counters describe the same moment.
    const scrape = await (await fetch(`${pod.probeUrl}/metrics`)).text();
    const counter = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(scrape)?.[1] ?? 0);
    const packets = counter("chat_coalesced_packets_total");
    const writes = counter("chat_coalesced_writes_total");
    console.info(`coalesce: ${packets} packets in ${writes} writes (${packets - writes} writes saved)`);
    expect(writes).toBeGreaterThan(0);
    expect(packets).toBeGreaterThanOrEqual(2 * writes);
    expect(writes).toBeLessThan(packets);
  });
});
