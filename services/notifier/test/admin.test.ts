import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import {
  REDIS_ENGINES,
  closeAllClients,
  connectClient,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type RedisEngine,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack } from "@chat/shared";
import { API_KEY, joinRoom, startNotifier } from "./helpers.js";

/** Calls the server API with the key; `body` is sent as JSON. */
async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body !== undefined && { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const send = (socket: Socket, room: string, text: string) => socket.emitWithAck("message", { room, text }) as Promise<Ack<{ id: string }>>;

describe.each(REDIS_ENGINES)("admin reads through the server API, across 2 chat pods and 2 notifiers, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];
  let notifiers: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    // Pods renew their liveness and figures every PRESENCE_TTL_SECONDS / 3.
    const env = {
      ...redis.env,
      PRESENCE_TTL_SECONDS: "6",
      RATE_LIMIT_EVENTS_PER_SECOND: "0",
      QUOTA_USER_BYTES: "0",
      QUOTA_ROOM_BYTES: "0",
      QUOTA_TOTAL_BYTES: "0",
    };
    [pods, notifiers] = await Promise.all([
      Promise.all([startService("chat", { env, pod: "chat-a" }), startService("chat", { env, pod: "chat-b" })]),
      Promise.all([startNotifier(redis.env, {}, "notifier-a"), startNotifier(redis.env, {}, "notifier-b")]),
    ]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("lists live rooms with a prefix, cursor-paged, with member counts and last ids, and room detail and messages", async () => {
    const users = await Promise.all(pods.map((pod, i) => connectClient(pod.url, `admin-user-${i}`)));
    const rooms = ["lobby-1", "lobby-2", "lobby-3", "other"];
    for (const room of rooms) await joinRoom(users[0]!, room);
    await joinRoom(users[1]!, "lobby-2");
    let last = "";
    for (let i = 0; i < 5; i++) {
      const sent = (await send(users[1]!, "lobby-2", `hello ${i}`)) as { id: string };
      last = sent.id;
    }

    const first = await api(notifiers[0]!.url, "GET", "/v1/rooms?prefix=lobby-&limit=2");
    expect(first.body).toEqual({
      rooms: [
        { room: "lobby-1", members: 1, lastId: null },
        { room: "lobby-2", members: 2, lastId: last },
      ],
      cursor: "lobby-2",
    });
    const second = await api(notifiers[1]!.url, "GET", "/v1/rooms?prefix=lobby-&limit=2&cursor=lobby-2");
    expect(second.body).toEqual({ rooms: [{ room: "lobby-3", members: 1, lastId: null }] });

    const detail = await api(notifiers[1]!.url, "GET", "/v1/rooms/lobby-2");
    expect(detail.body).toMatchObject({ room: "lobby-2", log: { length: 5, lastId: last } });
    expect((detail.body.members as { id: string }[]).map((m) => m.id)).toEqual(["admin-user-0", "admin-user-1"]);

    const page = await api(notifiers[0]!.url, "GET", "/v1/rooms/lobby-2/messages?limit=2");
    expect(page.body).toMatchObject({ room: "lobby-2", more: true, complete: false });
    expect((page.body.messages as { text: string }[]).map((m) => m.text)).toEqual(["hello 3", "hello 4"]);
    const back = await api(notifiers[0]!.url, "GET", `/v1/rooms/lobby-2/messages?limit=10&before=${page.body.cursor as string}`);
    expect((back.body.messages as { text: string }[]).map((m) => m.text)).toEqual(["hello 0", "hello 1", "hello 2"]);
    expect(back.body).toMatchObject({ complete: true, more: false });
  });

  it("reports each chat pod's connections, rooms and readiness from its liveness keys", async () => {
    const extra = await connectClient(pods[1]!.url, "stats-user");
    await joinRoom(extra, "stats-room");
    let body: { pods: { pod: string; connections: number; ready: boolean; rooms: number }[]; totals: { pods: number } } | undefined;
    // The figures are renewed every 2 s: wait for a write after the joins.
    await waitFor(
      async () => {
        body = (await api(notifiers[0]!.url, "GET", "/v1/stats")).body as typeof body;
        const b = body!.pods.find((p) => p.pod === "chat-b");
        return body!.totals.pods === 2 && body!.pods.every((p) => p.ready) && b !== undefined && b.rooms >= 2 && b.connections >= 2;
      },
      { timeoutMs: 20_000, what: () => `stats with both pods (last: ${JSON.stringify(body)})` },
    );
    expect(body!.pods.map((p) => [p.pod, p.ready])).toEqual([
      ["chat-a", true],
      ["chat-b", true],
    ]);
  });
});
