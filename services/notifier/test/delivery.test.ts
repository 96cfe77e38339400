import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster, Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import {
  REDIS_ENGINES,
  closeAllClients,
  connectClient,
  record,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type RedisEngine,
  type RedisEngineKind,
  type ServiceProcess,
} from "@chat/testkit";
import type { Notification } from "@chat/shared";
import { engineClient, joinRoom, post, startNotifier, xadd } from "./helpers.js";

const STREAM = "notifier:events";
/** In open mode the user id is the display name: spaces and any script included. */
const USER_X = "Zoë X";

type ClientName = "a0" | "a1" | "b0" | "b1" | "x0" | "x1" | "n1";
const ALL: ClientName[] = ["a0", "a1", "b0", "b1", "x0", "x1", "n1"];

interface Case {
  name: string;
  /** Sends the event and returns the id clients should see. */
  send(): Promise<string>;
  to: ClientName[];
  /** The payload's target field, if any. */
  shape: Record<string, string>;
}

/** Both bus modes on one server; the other engines in the sharded mode a deployment would use. */
const cases: [RedisEngineKind, "sharded" | "classic"][] = [
  ["standalone", "classic"],
  ...REDIS_ENGINES.map((engine): [RedisEngineKind, "sharded"] => [engine, "sharded"]),
];

describe.each(cases)("notifications through both intakes, to 2 chat pods, on %s Redis, %s bus", (engine, mode) => {
  let redis: RedisEngine;
  let db: Redis | Cluster;
  let notifier: ServiceProcess;
  let chatUrl: string;
  const clients = {} as Record<ClientName, Socket>;
  const inboxes = {} as Record<ClientName, Notification[]>;

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    db = engineClient(redis);
    const env = { ...redis.env, BUS_MODE: mode };
    const [pod0, pod1] = await Promise.all([
      startService("chat", { pod: "chat-0", env }),
      startService("chat", { pod: "chat-1", env }),
      startNotifier(redis.env, { BUS_MODE: mode }).then((n) => (notifier = n)),
    ]);
    chatUrl = pod0.url;
    // a* in room-a, b* in room-b, x* are one user on both pods, n1 is in no room at all.
    const layout: [ClientName, ServiceProcess, string, string | undefined][] = [
      ["a0", pod0, "ann", "room-a"],
      ["a1", pod1, "bob", "room-a"],
      ["b0", pod0, "cyd", "room-b"],
      ["b1", pod1, "dee", "room-b"],
      ["x0", pod0, USER_X, undefined],
      ["x1", pod1, USER_X, undefined],
      ["n1", pod1, "nobody", undefined],
    ];
    await Promise.all(
      layout.map(async ([key, pod, name, room]) => {
        const socket = await connectClient(pod.url, name);
        clients[key] = socket;
        inboxes[key] = record<Notification>(socket, "notification");
        if (room) await joinRoom(socket, room);
      }),
    );
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  const accepted = async (reply: Promise<{ status: number; body: { id?: string } }>) => {
    const { status, body } = await reply;
    expect(status).toBe(202);
    return body.id!;
  };

  const cases: Case[] = [
    {
      name: "HTTP to a room",
      send: () => accepted(post(notifier.url, "/v1/rooms/room-a/events", { id: "http-room", type: "order.shipped", data: { n: 1 } })),
      to: ["a0", "a1"],
      shape: { room: "room-a" },
    },
    {
      name: "HTTP to a user",
      send: () => accepted(post(notifier.url, `/v1/users/${encodeURIComponent(USER_X)}/events`, { type: "dm", data: "hi" })),
      to: ["x0", "x1"],
      shape: { user: USER_X },
    },
    {
      name: "HTTP broadcast",
      send: () => accepted(post(notifier.url, "/v1/broadcast", { id: "http-all", type: "maintenance", data: null })),
      to: ALL,
      shape: {},
    },
    {
      name: "stream to a room (id from the entry id)",
      send: async () => `s-${await xadd(db, STREAM, { room: "room-b", type: "t", data: '{"n":2}' })}`,
      to: ["b0", "b1"],
      shape: { room: "room-b" },
    },
    {
      name: "stream to a user",
      send: async () => (await xadd(db, STREAM, { user: USER_X, type: "t", data: "[1,2]", id: "stream-user" }), "stream-user"),
      to: ["x0", "x1"],
      shape: { user: USER_X },
    },
    {
      name: "stream broadcast",
      send: async () => (await xadd(db, STREAM, { broadcast: "1", type: "t", data: "true", id: "stream-all" }), "stream-all"),
      to: ALL,
      shape: {},
    },
  ];
  const sent = new Map<string, Case>();
  const idOf = new Map<Case, string>();
  let sending: Promise<void> | undefined;
  /**
   * Sends every case once, in order, whichever test asks first, so that each test of this file
   * also runs alone (`-t`): the later ones look at what all the cases delivered.
   */
  const sendAll = () =>
    (sending ??= (async () => {
      for (const c of cases) {
        const id = await c.send();
        sent.set(id, c);
        idOf.set(c, id);
        await waitFor(() => c.to.every((key) => inboxes[key].some((n) => n.eventId === id)), { what: () => `${id} to reach ${c.to.join(", ")}` });
      }
    })());

  it.each(cases)("delivers $name to its targets on both pods", async (c) => {
    await sendAll();
    const id = idOf.get(c)!;
    await waitFor(() => c.to.every((key) => inboxes[key].some((n) => n.eventId === id)), {
      what: () => `${id} to reach ${c.to.join(", ")}`,
    });
    for (const key of c.to) {
      const notification = inboxes[key].find((n) => n.eventId === id)!;
      // Room events also carry their place in the room's log, like chat messages: `id` is the log
      // id (`logId` its deprecated alias) and `prev` the entry before; user and broadcast events
      // have no log, and their `id` is the event id.
      const logged = "room" in c.shape ? ["logId", "prev"] : [];
      expect(Object.keys(notification).sort()).toEqual(["data", "eventId", "id", "ts", "type", ...logged, ...Object.keys(c.shape)].sort());
      if ("room" in c.shape)
        expect([notification.id, (notification as { logId?: string }).logId]).toEqual([expect.stringMatching(/^\d+-\d+$/), notification.id]);
      else expect(notification.id).toBe(id);
      expect(notification).toMatchObject(c.shape);
      expect(typeof notification.ts).toBe("number");
    }
  });

  it("stores room events in the room's log, so a client that comes back catches up on them", async () => {
    await sendAll();
    const late = await connectClient(chatUrl, "late");
    const ack = (await late.emitWithAck("join", { room: "room-a", since: "0-0" })) as {
      ok: boolean;
      messages: { event: string; id: string; eventId: string; logId: string; prev: string; type: string }[];
    };
    expect(ack.ok).toBe(true);
    const roomAIds = [...sent.entries()].filter(([, c]) => c.shape.room === "room-a").map(([id]) => id);
    expect(ack.messages.filter((m) => m.event === "notification").map((m) => m.eventId)).toEqual(roomAIds);
    // Chained like messages: each entry points back to the one before, by its `id`.
    expect(ack.messages[0]!.prev).toBe("0-0");
    for (let i = 1; i < ack.messages.length; i++) expect(ack.messages[i]!.prev).toBe(ack.messages[i - 1]!.id);
    expect(ack.messages.every((m) => m.logId === m.id)).toBe(true);
    late.close();
  });

  it("reaches nobody else", async () => {
    await sendAll();
    // A broadcast travels the same way as every event before it: once it is everywhere, anything
    // that was going to reach a wrong client has done so.
    expect(await accepted(post(notifier.url, "/v1/broadcast", { id: "marker", type: "marker", data: null }))).toBe("marker");
    await waitFor(() => ALL.every((key) => inboxes[key].some((n) => n.eventId === "marker")), { what: "the marker everywhere" });
    for (const key of ALL) {
      const expected = [...sent].filter(([, c]) => c.to.includes(key)).map(([id]) => id);
      expect(
        inboxes[key]
          .map((n) => n.eventId)
          .filter((id) => id !== "marker")
          .sort(),
        key,
      ).toEqual(expected.sort());
    }
  });

  it("sends data as given", async () => {
    await sendAll();
    expect(inboxes.a1.find((n) => n.eventId === "http-room")).toMatchObject({ type: "order.shipped", data: { n: 1 } });
    expect(inboxes.x0.find((n) => n.eventId === "stream-user")).toMatchObject({ type: "t", data: [1, 2] });
    expect(inboxes.n1.find((n) => n.eventId === "stream-all")).toMatchObject({ data: true });
  });

  it("keeps a stream's order: a member sees room, user and broadcast entries in the order they were added (on a cluster, each target's in order)", async () => {
    // One MULTI, so the notifier reads them in one batch, where room events take their own path.
    const targets = [{ user: "ann" }, { room: "room-a" }, { broadcast: "1" }];
    const ids = Array.from({ length: 30 }, (_, i) => `order-${i}`);
    const tx = db.multi();
    for (const [i, id] of ids.entries()) tx.xadd(STREAM, "*", ...Object.entries({ ...targets[i % 3]!, type: "t", data: String(i), id }).flat());
    await tx.exec();
    await waitFor(() => ids.every((id) => inboxes.a0.some((n) => n.eventId === id)), { what: "the 30 entries at a0" });
    const seen = inboxes.a0.map((n) => n.eventId).filter((id) => id.startsWith("order-"));
    if (engine !== "cluster") {
      expect(seen).toEqual(ids);
      return;
    }
    // On a cluster the three targets' channels live on different masters, and each master reaches a
    // pod over a connection of its own: the notifier sends a run only once the one before it is
    // answered, but nothing orders two connections' bytes inside the pod (a CI run once saw two swap).
    // What holds there is each target's own order (README, Message bus).
    for (const target of [0, 1, 2]) {
      const mine = ids.filter((_, i) => i % 3 === target);
      expect(seen.filter((id) => mine.includes(id))).toEqual(mine);
    }
  });
});
