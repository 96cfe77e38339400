import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectMany,
  record,
  REDIS_ENGINES,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  waitForCounts,
  type RedisEngine,
  type RedisEngineKind,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, ChatMessage } from "@chat/shared";

const CLIENTS = 300;
const PER_POD_SENDS = 3;

async function joinAll(clients: Socket[], room: string): Promise<void> {
  const acks: Ack[] = await Promise.all(clients.map((c) => c.emitWithAck("join", { room })));
  expect(acks.every((ack) => ack.ok)).toBe(true);
}

/** Sends PER_POD_SENDS messages from a client on each pod; returns the acked ids. */
async function sendFromEveryPod(clients: Socket[], pods: number, room: string): Promise<string[]> {
  const ids: string[] = [];
  for (let round = 0; round < PER_POD_SENDS; round++) {
    for (let pod = 0; pod < pods; pod++) {
      const sender = clients[pod + round * pods]!; // round-robin: client i is on pod i % pods
      const ack: Ack<{ id: string }> = await sender.emitWithAck("message", { room, text: `hello ${round}/${pod}` });
      if (!ack.ok) throw new Error(ack.error.message);
      ids.push(ack.id);
    }
  }
  return ids;
}

/** Both bus modes on one server; the other engines in the sharded mode a deployment would use. */
const cases: [RedisEngineKind, "sharded" | "classic"][] = [
  ["standalone", "classic"],
  ...REDIS_ENGINES.map((engine): [RedisEngineKind, "sharded"] => [engine, "sharded"]),
];

describe.each(cases)("3 chat processes on %s Redis, %s bus", (engine, mode) => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];
  let clients: Socket[];

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env: { ...redis.env, BUS_MODE: mode } })));
    clients = await connectMany(
      pods.map((p) => p.url),
      CLIENTS,
    );
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("delivers every message to every client in the room, on every pod", async () => {
    await joinAll(clients, "town-square");
    const inboxes = clients.map((c) => record<ChatMessage>(c, "message"));
    const ids = await sendFromEveryPod(clients, pods.length, "town-square");

    await waitForCounts(inboxes, ids.length);
    for (const inbox of inboxes) {
      expect(inbox.map((m) => m.id).sort()).toEqual([...ids].sort());
    }
    const sample = inboxes[1]!.find((m) => m.id === ids[0])!;
    expect(sample).toMatchObject({ room: "town-square", text: "hello 0/0", user: { id: "user-0", name: "user-0" } });
    expect(typeof sample.ts).toBe("number");
  });

  it("counts the members of every pod in the join ack, and lists the first 200 of them (a big room: PRESENCE_ANNOUNCE_MAX_MEMBERS)", async () => {
    // A big room's roster is a snapshot of at most a second (room-views.ts): a join right after the
    // others may count fewer. Joining again is harmless; wait for one that counts everyone.
    type JoinAck = Ack<{ members: { id: string }[]; memberCount: number }>;
    let last: JoinAck | undefined;
    await waitFor(
      async () => {
        const ack: JoinAck = await clients[0]!.emitWithAck("join", { room: "town-square" });
        last = ack;
        return ack.ok && ack.memberCount === CLIENTS;
      },
      { what: "a join ack counting every member" },
    );
    const ack = last!;
    expect(ack.ok && [ack.memberCount, ack.members.length]).toEqual([CLIENTS, 200]);
    expect(ack.ok && new Set(ack.members.map((m) => Number(m.id.slice("user-".length)) % 3))).toEqual(new Set([0, 1, 2]));
  });
});

describe("the same 3 processes without Redis", () => {
  let pods: ServiceProcess[];
  let clients: Socket[];

  beforeAll(async () => {
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `solo-${i}` })));
    clients = await connectMany(
      pods.map((p) => p.url),
      CLIENTS,
    );
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
  });

  it("delivers only to clients on the sender's pod: the third users see without the adapter", async () => {
    await joinAll(clients, "town-square");
    const inboxes = clients.map((c) => record<ChatMessage>(c, "message"));
    const ids = await sendFromEveryPod(clients, pods.length, "town-square");

    // Every client gets exactly the messages sent on its own pod. Wait for those, then make sure
    // no cross-pod message trickles in behind them.
    await waitForCounts(inboxes, PER_POD_SENDS);
    const marker: Ack = await clients[0]!.emitWithAck("message", { room: "town-square", text: "marker" });
    expect(marker.ok).toBe(true);
    await waitForCounts(
      inboxes.filter((_, i) => i % 3 === 0),
      PER_POD_SENDS + 1,
    );

    for (const [i, inbox] of inboxes.entries()) {
      const own = ids.filter((_, k) => k % pods.length === i % pods.length);
      expect(
        inbox
          .filter((m) => m.text !== "marker")
          .map((m) => m.id)
          .sort(),
      ).toEqual(own.sort());
    }
    const delivered = inboxes.reduce((sum, inbox) => sum + inbox.filter((m) => m.text !== "marker").length, 0);
    expect(delivered / (CLIENTS * ids.length)).toBeCloseTo(1 / 3, 2);
  });
});
