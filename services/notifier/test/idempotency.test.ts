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
  type ServiceProcess,
} from "@chat/testkit";
import type { Notification } from "@chat/shared";
import { engineClient, joinRoom, post, startNotifier, waitForNoPending, xadd } from "./helpers.js";

const STREAM = "notifier:events";

describe.each(REDIS_ENGINES)("idempotency and shared consumption, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let db: Redis | Cluster;
  let notifiers: ServiceProcess[];
  let client: Socket;
  let inbox: Notification[];

  /** Sends a marker through the stream and waits for it: everything sent before has arrived. */
  async function settle(marker: string): Promise<void> {
    await xadd(db, STREAM, { room: "ops", type: "marker", data: "null", id: marker });
    await waitFor(() => inbox.some((n) => n.eventId === marker), { what: `marker ${marker}` });
    await waitForNoPending(db, STREAM);
  }

  const count = (id: string) => inbox.filter((n) => n.eventId === id).length;

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    db = engineClient(redis);
    // Two replicas on one stream; debug logs let the test see every dedupe hit.
    const env = { NOTIFIER_BATCH_SIZE: "10", LOG_LEVEL: "debug" };
    const [chat, ...replicas] = await Promise.all([
      startService("chat", { env: redis.env }),
      startNotifier(redis.env, env, "notifier-0"),
      startNotifier(redis.env, env, "notifier-1"),
    ]);
    notifiers = replicas;
    client = await connectClient(chat.url, "ops-watcher");
    inbox = record<Notification>(client, "notification");
    await joinRoom(client, "ops");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  it("delivers an HTTP retry with the same id once, and answers 202 with that id both times", async () => {
    const event = { id: "retry-1", type: "t", data: { n: 1 } };
    const first = await post(notifiers[0]!.url, "/v1/rooms/ops/events", event);
    // The retry goes to the other replica, as it would behind a load balancer.
    const second = await post(notifiers[1]!.url, "/v1/rooms/ops/events", event);
    expect([first, second]).toEqual([
      { status: 202, body: { id: "retry-1" } },
      { status: 202, body: { id: "retry-1" } },
    ]);
    await settle("marker-1");
    expect(count("retry-1")).toBe(1);
  });

  it("generates and returns an id when the caller gives none", async () => {
    const reply = await post(notifiers[0]!.url, "/v1/rooms/ops/events", { type: "t", data: 1 });
    expect(reply.status).toBe(202);
    expect(reply.body.id).toMatch(/^[0-9a-f-]{36}$/);
    await waitFor(() => count(reply.body.id!) === 1, { what: "the event with the generated id" });
  });

  it("delivers a stream entry sent twice with the same id once", async () => {
    for (let i = 0; i < 2; i++) await xadd(db, STREAM, { room: "ops", type: "t", data: "{}", id: "stream-twice" });
    await settle("marker-2");
    expect(count("stream-twice")).toBe(1);
  });

  it("shares one id space between the intakes", async () => {
    expect((await post(notifiers[1]!.url, "/v1/rooms/ops/events", { id: "both-ways", type: "t", data: 1 })).status).toBe(202);
    await xadd(db, STREAM, { room: "ops", type: "t", data: "2", id: "both-ways" });
    await settle("marker-3");
    expect(inbox.filter((n) => n.eventId === "both-ways").map((n) => n.data)).toEqual([1]);
  });

  it("lets two replicas share the stream without double delivery", async () => {
    const before = duplicatesLogged();
    // No ids: each gets one from its entry id, and no dedupe hit may be needed to deliver once.
    const pipeline = db.pipeline();
    for (let i = 0; i < 300; i++) pipeline.xadd(STREAM, "*", "room", "ops", "type", "bulk", "data", String(i));
    await pipeline.exec();
    await settle("marker-4");
    const bulk = inbox.filter((n) => n.type === "bulk");
    expect(bulk).toHaveLength(300);
    expect(new Set(bulk.map((n) => n.data)).size).toBe(300);
    expect(duplicatesLogged()).toBe(before);
  });

  function duplicatesLogged(): number {
    return notifiers.reduce((sum, n) => sum + n.logs.filter((l) => /duplicate event id/.test(l.msg)).length, 0);
  }
});
