import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "ioredis";
import { decode } from "notepack.io";
import { startRedisCluster, waitFor, type RedisCluster } from "@chat/testkit";
import { BUS_MAIN_CHANNEL, busRoomChannel, createBusEmitter } from "../src/bus.js";
import { resolveBusMode } from "../src/bus-mode.js";
import { createRateLimit } from "../src/rate-limit.js";
import { createRedisRoomLog } from "../src/room-log.js";

const ROOMS = Array.from({ length: 30 }, (_, i) => `room-${i}`);

/** A ClusterAdapter message as ShardedRedisAdapter decodes it. */
interface BusMessage {
  uid: string;
  nsp: string;
  type: number;
  data: { opts: { rooms: string[] }; packet: { data: [string, Record<string, unknown>] } };
}

/*
 * The bus layer on a real 3-master Redis Cluster: the room log's script appends and SPUBLISHes
 * on whichever master holds the room (its keys share the slot of the room's channel), and the
 * bus emitter's publishes are routed to the master of their channel.
 */
describe("the message bus on a 3-master Redis Cluster", () => {
  let cluster: RedisCluster;
  let pub: Cluster;
  let sub: Cluster;
  const received = new Map<string, BusMessage[]>();

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    pub = new Cluster(cluster.startupNodes, { redisOptions: { maxRetriesPerRequest: 1 } });
    // Sharded subscriptions must be made on the master of each channel's slot.
    sub = new Cluster(cluster.startupNodes, { shardedSubscribers: true });
    sub.on("smessageBuffer", (channel: Buffer, message: Buffer) => {
      const list = received.get(channel.toString()) ?? [];
      list.push(decode(message) as BusMessage);
      received.set(channel.toString(), list);
    });
    for (const channel of [BUS_MAIN_CHANNEL, ...ROOMS.map(busRoomChannel)]) await sub.ssubscribe(channel);
  });

  afterAll(async () => {
    sub?.disconnect();
    pub?.disconnect();
    await cluster?.dispose();
  });

  it("resolves auto to sharded", async () => {
    expect(await resolveBusMode(pub, "auto")).toBe("sharded");
  });

  it("spreads the rooms' channels over every master", async () => {
    const slots = await Promise.all(ROOMS.map((room) => pub.cluster("KEYSLOT", busRoomChannel(room))));
    const owners = new Set(slots.map((slot) => pub.slots[slot]?.[0]));
    expect(owners.size).toBe(3);
  });

  it("appends to each room's log and publishes on its channel in one script, on every master", async () => {
    const log = createRedisRoomLog(pub, { busMode: "sharded" });
    const appended = new Map<string, string[]>();
    await Promise.all(
      ROOMS.map(async (room) => {
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) ids.push((await log.append(room, "message", { room, text: `hello ${i}` })).id);
        appended.set(room, ids);
      }),
    );
    await waitFor(() => ROOMS.every((room) => (received.get(busRoomChannel(room))?.length ?? 0) >= 3), {
      what: "every room's three messages on its channel",
    });
    for (const room of ROOMS) {
      const messages = received.get(busRoomChannel(room))!;
      expect(messages.map((m) => m.data.packet.data[1].id)).toEqual(appended.get(room));
      expect(messages[0]).toMatchObject({ uid: "emitter", nsp: "/", type: 3, data: { opts: { rooms: [room] } } });
      expect(messages.map((m) => m.data.packet.data[1].prev)).toEqual(["0-0", ...appended.get(room)!.slice(0, 2)]);
      const { entries, complete } = await log.read(room, { limit: 10 });
      expect(entries.map((e) => e.id)).toEqual(appended.get(room));
      expect(complete).toBe(true);
    }
  });

  it("counts a sender's rate limit before the script, since its keys are in other slots", async () => {
    const log = createRedisRoomLog(pub, { busMode: "sharded" });
    const limiter = createRateLimit(pub, { keyPrefix: "test:rl:cluster", points: 2, durationSeconds: 60 })!;
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await log.appendLimited("room-3", "message", { text: `l${i}` }, { limiter, key: "erin" }));
    expect(results.map((r) => "refused" in r)).toEqual([false, false, true]);
  });

  it("routes the bus emitter's room events and broadcasts to the right masters", async () => {
    const emitter = createBusEmitter(pub, "sharded");
    emitter.to("room-7").emit("notification", { id: "to-room-7" });
    emitter.emit("notification", { id: "to-everyone" });
    const seen = (channel: string, id: string) => received.get(channel)?.some((m) => m.data.packet.data[1].id === id) ?? false;
    await waitFor(() => seen(busRoomChannel("room-7"), "to-room-7") && seen(BUS_MAIN_CHANNEL, "to-everyone"), {
      what: "the room event on room-7's channel and the broadcast on the main channel",
    });
  });
});
