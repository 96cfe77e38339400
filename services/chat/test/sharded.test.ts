import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  describeServices,
  record,
  startRedis,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { BUS_MODE_KEY, busRoomChannel, type ChatMessage } from "@chat/shared";
import { baseChannels, busMessagesReceived, busState, channelsFor, join, send, shardChannels, startPods } from "./bus-helpers.js";

const ROOMS = 30;
const MEMBERS = 4;
const MESSAGES = 10;
const podOf = (room: number) => room % 3;

/*
 * Every room has its members on exactly one of the 3 pods, and messages flow only in the rooms
 * of pod 0. Sharded, pods 1 and 2 read none of that traffic from Redis; classic, every pod reads
 * all of it. The same scenario in both modes shows what the bus metric measures.
 */
describe.each(["sharded", "classic"] as const)("30 rooms over 3 pods, each room on one pod, in %s mode", (mode) => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  const members: Socket[][] = [];
  const inboxes = new Map<Socket, ChatMessage[]>();
  const sent: string[][] = [];
  const before: number[] = [];
  const disconnects = new Map<Socket, string>();

  /**
   * Sends a marker in rooms 0, 1 and 2 (one per pod) and waits until their members have it.
   * Redis delivers to a subscriber in publish order, so whatever was published before a marker
   * has reached that pod by then: counters read afterwards are final, with no sleeping.
   */
  async function markEveryPod(): Promise<void> {
    const ids = await Promise.all([0, 1, 2].map((room) => send(members[room]![0]!, `room-${room}`, "marker")));
    const missing = () => [0, 1, 2].flatMap((room) => members[room]!.filter((c) => !inboxes.get(c)!.some((m) => m.id === ids[room])).map((c) => ({ room, c })));
    await waitFor(() => missing().length === 0, {
      // What a failure on CI needs to be understood: who lacks which marker, and what the pods logged.
      what: () =>
        [
          `the markers ${ids.join(", ")} to reach every pod; missing for:`,
          ...missing().map(
            ({ room, c }) =>
              `  room-${room} on pod ${podOf(room)}: ${c.id ?? "?"} ${c.connected ? "connected" : `disconnected (${disconnects.get(c) ?? "?"})`}`,
          ),
          describeServices(pods),
        ].join("\n"),
    });
  }

  beforeAll(async () => {
    redis = await startRedis();
    pods = await startPods(3, redis.url, mode);
    for (let room = 0; room < ROOMS; room++) {
      const sockets = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => connectClient(pods[podOf(room)]!.url, `member-${room}-${i}`)));
      for (const socket of sockets) {
        inboxes.set(socket, record<ChatMessage>(socket, "message"));
        socket.on("disconnect", (reason) => disconnects.set(socket, reason));
      }
      await Promise.all(sockets.map((socket) => join(socket, `room-${room}`)));
      members.push(sockets);
    }
    expect((await busState(pods[0]!)).mode).toBe(mode);
    await markEveryPod();
    before.push(...(await Promise.all(pods.map(busMessagesReceived))));
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("delivers every message of pod 0's rooms to all of their members, in order, and nothing to anyone else", async () => {
    const pod0Rooms = [...Array(ROOMS).keys()].filter((room) => podOf(room) === 0);
    await Promise.all(
      pod0Rooms.map(async (room) => {
        const ids: string[] = [];
        for (let i = 0; i < MESSAGES; i++) ids.push(await send(members[room]![i % MEMBERS]!, `room-${room}`, `text ${i}`));
        sent[room] = ids;
      }),
    );
    const expected = pod0Rooms.length * MESSAGES * MEMBERS;
    const delivered = () => [...inboxes.values()].reduce((sum, inbox) => sum + inbox.filter((m) => m.text !== "marker").length, 0);
    await waitFor(() => delivered() >= expected, { what: () => `${expected} deliveries (got ${delivered()})` });

    for (let room = 0; room < ROOMS; room++) {
      for (const socket of members[room]!) {
        const texts = inboxes.get(socket)!.filter((m) => m.text !== "marker");
        expect(texts.map((m) => m.id)).toEqual(sent[room] ?? []);
      }
    }
    expect(delivered()).toBe(expected); // 100%, and not one more
  });

  const readers = mode === "sharded" ? "pod 0 alone" : "every pod";
  it(`has ${readers} read that traffic from Redis (chat_bus_messages_received_total)`, async () => {
    await markEveryPod();
    const after = await Promise.all(pods.map(busMessagesReceived));
    const read = after.map((value, pod) => value - before[pod]!);
    const traffic = (ROOMS / 3) * MESSAGES;
    // Each pod also reads the markers of the rooms it serves (sharded) or every marker (classic).
    if (mode === "sharded") expect(read).toEqual([traffic + 1, 1, 1]);
    else expect(read).toEqual([traffic + 3, traffic + 3, traffic + 3]);
  });
});

describe("a Redis restart in sharded mode", () => {
  let redis: RedisServer;
  let db: Redis;
  let pods: ServiceProcess[];
  let ann: Socket, bob: Socket, cat: Socket, dan: Socket;

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    db.on("error", () => undefined); // the outage below is on purpose
    pods = await startPods(2, redis.url, "sharded", "restart", { LOG_LEVEL: "debug" });
    [ann, bob, cat, dan] = await Promise.all([
      connectClient(pods[0]!.url, "ann"),
      connectClient(pods[1]!.url, "bob"),
      connectClient(pods[1]!.url, "cat"),
      connectClient(pods[1]!.url, "dan"),
    ]);
    await Promise.all([join(ann, "both"), join(bob, "both"), join(cat, "pod-1-only"), join(dan, "left-in-the-outage")]);
  });

  afterAll(async () => {
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  it("re-subscribes to the rooms that still have members, and drops the one whose member left meanwhile", async () => {
    const resyncs = [ann, bob, cat].map((socket) => record(socket, "resync"));
    await redis.stop();
    await Promise.all(pods.map((pod) => pod.waitForLog((l) => /redis connection lost/.test(l.msg))));
    dan.close(); // pod 1's unsubscribe from the room cannot reach Redis now
    await waitFor(async () => !(await busState(pods[1]!)).expected.includes(busRoomChannel("left-in-the-outage")), {
      what: "pod 1 to notice that its last member of left-in-the-outage is gone",
    });
    // ioredis drops commands queued while offline every second failed reconnect
    // (maxRetriesPerRequest: 1), so after three the unsubscribe is lost for sure.
    const failures = () => pods[1]!.logs.filter((l) => l.role === "sub" && l.msg === "redis error").length;
    const seen = failures();
    await waitFor(() => failures() >= seen + 3, { timeoutMs: 15_000, what: "pod 1 to fail three more reconnects" });

    await redis.start(); // an empty server: no persistence, no subscriptions
    await waitFor(async () => (await Promise.all(pods.map(busState))).every((state) => state.ready), {
      timeoutMs: 15_000,
      what: "both pods to have checked their subscriptions",
    });
    const [zero, one] = await Promise.all(pods.map(busState));
    expect(zero!.subscriptions).toEqual(channelsFor(["both", "@user:ann"], baseChannels(zero!)));
    expect(one!.subscriptions).toEqual(channelsFor(["both", "pod-1-only", "@user:bob", "@user:cat"], baseChannels(one!)));
    expect(await shardChannels(db)).toEqual([...new Set([...zero!.subscriptions, ...one!.subscriptions])].sort());
    // The dropped unsubscribes were expected and repaired: nothing to alarm an operator.
    expect(pods.flatMap((pod) => pod.logs.filter((line) => line.level >= 50))).toEqual([]);
    // The running pods wrote the deployment's mode back into the new server.
    expect(await db.get(BUS_MODE_KEY)).toBe("sharded");
    // Their clients were told to catch up on what the outage may have cost them.
    await waitFor(() => resyncs.every((events) => events.length === 1), { what: "every client to be asked to re-sync" });
  });

  it("delivers across pods again", async () => {
    const [bobs, cats] = [record<ChatMessage>(bob, "message"), record<ChatMessage>(cat, "message")];
    const across = await send(ann, "both", "after the restart");
    const local = await send(cat, "pod-1-only", "still here");
    await waitFor(() => bobs.some((m) => m.id === across) && cats.some((m) => m.id === local), { what: "both messages" });
  });
});
