import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  metricValue,
  record,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { busRoomChannel, createBusEmitter, userRoom, type Notification } from "@chat/shared";
import { joinRoom, post, redisClient, startNotifier } from "./helpers.js";

type Name = "r0" | "r1" | "r2" | "all0" | "all1" | "all2" | "uma0" | "uma2" | "idle1";
/** Who is where: a room per pod, a room on every pod, one user on pods 0 and 2, and a bystander. */
const LAYOUT: [Name, pod: number, user: string, room?: string][] = [
  ["r0", 0, "ann", "pod-0-room"],
  ["r1", 1, "bob", "pod-1-room"],
  ["r2", 2, "cyd", "pod-2-room"],
  ["all0", 0, "dee", "everywhere"],
  ["all1", 1, "eve", "everywhere"],
  ["all2", 2, "fay", "everywhere"],
  ["uma0", 0, "Uma", undefined],
  ["uma2", 2, "Uma", undefined],
  ["idle1", 1, "gus", undefined],
];
const EVERYONE = LAYOUT.map(([name]) => name);

describe("the notifier on 3 chat pods in sharded mode", () => {
  let redis: RedisServer;
  let db: Redis;
  let notifier: ServiceProcess;
  let pods: ServiceProcess[];
  const sockets = {} as Record<Name, Socket>;
  const inboxes = {} as Record<Name, Notification[]>;

  beforeAll(async () => {
    redis = await startRedis();
    db = redisClient(redis.url);
    const env = { REDIS_URL: redis.url, BUS_MODE: "sharded" };
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `chat-${i}`, env })));
    notifier = await startNotifier(redis.url, { BUS_MODE: "sharded" });
    for (const [name, pod, user, room] of LAYOUT) {
      sockets[name] = await connectClient(pods[pod]!.url, user);
      inboxes[name] = record<Notification>(sockets[name], "notification");
      if (room) await joinRoom(sockets[name], room);
    }
    // A pod subscribes to a user's channel as the user's socket connects; wait until both have.
    const listeners = async () => ((await db.call("PUBSUB", "SHARDNUMSUB", busRoomChannel(userRoom("Uma")))) as [string, number])[1];
    await waitFor(async () => (await listeners()) === 2, { what: "both of Uma's pods to listen to her channel" });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  async function deliver(path: string, id: string, to: Name[]): Promise<void> {
    const reply = await post(notifier.url, path, { id, type: "t", data: { id } });
    expect(reply.status).toBe(202);
    await waitFor(() => to.every((name) => inboxes[name].some((n) => n.eventId === id)), { what: () => `${id} to reach ${to.join(", ")}` });
  }

  /** Who got `id`: checked after a later broadcast has reached everyone, so nothing is still on its way. */
  const receivers = (id: string) => EVERYONE.filter((name) => inboxes[name].some((n) => n.eventId === id));

  it("delivers room events to the members of each room, on whichever pods they are", async () => {
    await deliver("/v1/rooms/pod-0-room/events", "to-r0", ["r0"]);
    await deliver("/v1/rooms/pod-1-room/events", "to-r1", ["r1"]);
    await deliver("/v1/rooms/pod-2-room/events", "to-r2", ["r2"]);
    await deliver("/v1/rooms/everywhere/events", "to-all-rooms", ["all0", "all1", "all2"]);
    await deliver("/v1/broadcast", "barrier-1", EVERYONE);
    expect(receivers("to-r0")).toEqual(["r0"]);
    expect(receivers("to-r1")).toEqual(["r1"]);
    expect(receivers("to-r2")).toEqual(["r2"]);
    expect(receivers("to-all-rooms")).toEqual(["all0", "all1", "all2"]);
  });

  it("delivers user events to every connection of the user, and broadcasts to everyone", async () => {
    await deliver(`/v1/users/Uma/events`, "to-uma", ["uma0", "uma2"]);
    await deliver("/v1/broadcast", "to-everyone", EVERYONE);
    expect(receivers("to-uma")).toEqual(["uma0", "uma2"]);
  });

  it("sends a room event only to the pod that serves the room", async () => {
    const read = () => Promise.all(pods.map((pod) => metricValue(pod, "chat_bus_messages_received_total")));
    const before = await read();
    await deliver("/v1/rooms/pod-1-room/events", "only-pod-1", ["r1"]);
    // Redis delivers in publish order: once this broadcast is everywhere, so is everything before it.
    await deliver("/v1/broadcast", "barrier-2", EVERYONE);
    const after = await read();
    expect(after.map((value, pod) => value - before[pod]!)).toEqual([1, 2, 1]);
  });

  it("lets the shared bus emitter reach rooms and disconnect a user's sockets on every pod", async () => {
    const emitter = createBusEmitter(db, "sharded");
    emitter.to("everywhere").emit("notification", { id: "from-emitter", type: "t", data: null });
    await waitFor(() => ["all0", "all1", "all2"].every((name) => inboxes[name as Name].some((n) => n.id === "from-emitter")), {
      what: "the emitter's event to reach the room on every pod",
    });

    const gone = (["uma0", "uma2"] as const).map((name) => new Promise((resolve) => sockets[name].once("disconnect", resolve)));
    emitter.in(userRoom("Uma")).disconnectSockets(true);
    await Promise.all(gone);
    expect(EVERYONE.filter((name) => !sockets[name].connected)).toEqual(["uma0", "uma2"]);
  });
});
