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
import type { Ack, PresenceEvent, SessionEnded } from "@chat/shared";
import { API_KEY, joinRoom, redisClient, startNotifier } from "./helpers.js";

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
const join = (socket: Socket, room: string) => socket.emitWithAck("join", { room }) as Promise<Ack>;

describe("moderation through the server API, across 2 chat pods and 2 notifiers", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let notifiers: ServiceProcess[];
  /** Alternates between the notifiers, so every route is served by both. */
  let calls = 0;
  const call = (method: string, path: string, body?: unknown) => api(notifiers[calls++ % 2]!.url, method, path, body);

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, RATE_LIMIT_EVENTS_PER_SECOND: "0" };
    [pods, notifiers] = await Promise.all([
      Promise.all([startService("chat", { env, pod: "chat-a" }), startService("chat", { env, pod: "chat-b" })]),
      Promise.all([startNotifier(redis.url, {}, "notifier-a"), startNotifier(redis.url, {}, "notifier-b")]),
    ]);
    // Both pods listen to the moderation channel before anything is published on it.
    const client = redisClient(redis.url);
    await waitFor(async () => ((await client.pubsub("NUMSUB", "chat:moderation")) as [string, number])[1] >= 2, { what: "2 pods on chat:moderation" });
    client.disconnect();
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  /** The user connected to both pods, in `room`. */
  async function everywhere(name: string, room: string): Promise<Socket[]> {
    const sockets = await Promise.all(pods.map((pod) => connectClient(pod.url, name)));
    for (const socket of sockets) await joinRoom(socket, room);
    return sockets;
  }

  it("kicks each of the user's connections on both pods out of the room, tells them why, and the others hear the user leave", async () => {
    const mallory = await everywhere("mallory", "kick-room");
    const bob = await connectClient(pods[0]!.url, "bob");
    await joinRoom(bob, "kick-room");
    const presence = record<PresenceEvent>(bob, "presence");
    const kicked = mallory.map((socket) => record(socket, "kicked"));

    const reply = await call("POST", "/v1/rooms/kick-room/kick", { userId: "mallory", reason: "spam" });
    expect(reply).toEqual({ status: 202, body: { room: "kick-room", userId: "mallory" } });
    await waitFor(() => kicked.every((list) => list.length === 1), { what: "both connections kicked" });
    for (const list of kicked) expect(list).toEqual([{ room: "kick-room", reason: "spam" }]);
    await waitFor(() => presence.some((e) => e.user.id === "mallory" && e.action === "leave"), { what: "bob hears mallory leave" });
    for (const socket of mallory) expect(await send(socket, "kick-room", "still here?")).toMatchObject({ ok: false, error: { code: "not_in_room" } });
    const detail = await call("GET", "/v1/rooms/kick-room");
    expect((detail.body.members as { id: string }[]).map((m) => m.id)).toEqual(["bob"]);
    // A kick is not a ban: the user may join again.
    expect(await join(mallory[0]!, "kick-room")).toMatchObject({ ok: true });
  });

  it("bans with a TTL: kicked at once, refused on every pod while it lasts, listed, and let back in once it expires", async () => {
    const eve = await everywhere("eve", "ban-room");
    const kicked = eve.map((socket) => record(socket, "kicked"));
    const reply = await call("PUT", "/v1/rooms/ban-room/bans/eve", { ttlSeconds: 3, reason: "flooding" });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ room: "ban-room", userId: "eve", reason: "flooding", expiresInSeconds: 3 });
    await waitFor(() => kicked.every((list) => list.length === 1), { what: "both connections kicked by the ban" });
    for (const socket of eve) {
      const refused = await join(socket, "ban-room");
      expect(refused).toMatchObject({ ok: false, error: { code: "forbidden" } });
      expect(!refused.ok && refused.error.message).toMatch(/you are banned from ban-room until .* \(flooding\)/);
    }
    const listed = await call("GET", "/v1/rooms/ban-room/bans");
    expect(listed.body).toMatchObject({ room: "ban-room", bans: [{ userId: "eve", reason: "flooding" }] });
    await waitFor(async () => (await join(eve[1]!, "ban-room")).ok, { timeoutMs: 15_000, what: "the ban to expire" });
    expect((await call("GET", "/v1/rooms/ban-room/bans")).body).toEqual({ room: "ban-room", bans: [] });
  });

  it("lifts a ban with DELETE, after which the user joins again; lifting nothing says so", async () => {
    const trent = await connectClient(pods[1]!.url, "trent");
    expect((await call("PUT", "/v1/rooms/lift-room/bans/trent")).status).toBe(200);
    expect(await join(trent, "lift-room")).toMatchObject({ ok: false, error: { code: "forbidden" } });
    expect(await call("DELETE", "/v1/rooms/lift-room/bans/trent")).toEqual({ status: 200, body: { room: "lift-room", userId: "trent", lifted: true } });
    await waitFor(async () => (await join(trent, "lift-room")).ok, { what: "trent let back in" });
    expect((await call("DELETE", "/v1/rooms/lift-room/bans/trent")).body).toMatchObject({ lifted: false });
  });

  it("mutes: the muted user's messages are refused on both pods while others still talk, until the mute is lifted", async () => {
    const carol = await everywhere("carol", "mute-room");
    const dave = await connectClient(pods[0]!.url, "dave");
    await joinRoom(dave, "mute-room");
    expect((await call("PUT", "/v1/rooms/mute-room/mutes/carol", { ttlSeconds: 600 })).status).toBe(200);
    for (const socket of carol) {
      await waitFor(async () => !(await send(socket, "mute-room", "hello")).ok, { what: "carol muted" });
      const refused = await send(socket, "mute-room", "hello");
      expect(refused).toMatchObject({ ok: false, error: { code: "forbidden" } });
      expect(!refused.ok && refused.error.message).toMatch(/muted in mute-room/);
    }
    expect(await send(dave, "mute-room", "I can talk")).toMatchObject({ ok: true });
    expect((await call("GET", "/v1/rooms/mute-room/mutes")).body).toMatchObject({ mutes: [{ userId: "carol" }] });
    expect((await call("DELETE", "/v1/rooms/mute-room/mutes/carol")).body).toMatchObject({ lifted: true });
    for (const socket of carol) await waitFor(async () => (await send(socket, "mute-room", "back")).ok, { what: "carol unmuted" });
  });

  it("deletes anyone's message as a moderator: every member on both pods gets message_deleted {room, id, logId}, the message leaves the log, and a second DELETE is 404", async () => {
    const [frank, grace] = await Promise.all(pods.map((pod, i) => connectClient(pod.url, i ? "grace" : "frank")));
    for (const socket of [frank!, grace!]) await joinRoom(socket, "del-room");
    const deleted = [frank!, grace!].map((socket) => record(socket, "message_deleted"));
    const sent = await send(frank!, "del-room", "oops");
    if (!sent.ok) throw new Error(JSON.stringify(sent));

    const reply = await call("DELETE", `/v1/rooms/del-room/messages/${sent.id}`);
    expect(reply).toMatchObject({ status: 200, body: { room: "del-room", id: sent.id } });
    await waitFor(() => deleted.every((list) => list.length === 1), { what: "message_deleted on both pods" });
    for (const list of deleted) expect(list[0]).toMatchObject({ room: "del-room", id: sent.id, logId: (reply.body as { entryId: string }).entryId });
    // The message is gone from the log, so a retried DELETE finds nothing and appends nothing.
    expect(await call("DELETE", `/v1/rooms/del-room/messages/${sent.id}`)).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    const history = await call("GET", "/v1/rooms/del-room/messages?limit=10");
    expect((history.body.messages as { event: string }[]).map((m) => m.event)).toEqual(["message_deleted"]);
    const missing = await call("DELETE", "/v1/rooms/del-room/messages/1-0");
    expect(missing).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
  });

  it("disconnects every connection of a user on both pods with the reason, and the user may reconnect", async () => {
    const heidi = await Promise.all(pods.map((pod) => connectClient(pod.url, "heidi")));
    const ended = heidi.map((socket) => record<SessionEnded>(socket, "session_ended"));
    const gone = heidi.map((socket) => new Promise<string>((resolve) => socket.once("disconnect", resolve)));
    expect(await call("POST", "/v1/users/heidi/disconnect", { reason: "account review" })).toEqual({ status: 202, body: { userId: "heidi" } });
    expect(await Promise.all(gone)).toEqual(["io server disconnect", "io server disconnect"]);
    for (const list of ended) expect(list).toEqual([{ reason: "disconnected", reconnect: true, message: "account review" }]);
    expect((await connectClient(pods[0]!.url, "heidi")).connected).toBe(true);
  });

  it("answers bad requests with 400, 401 and 415 in the API's error shape", async () => {
    const base = notifiers[0]!.url;
    expect(await call("PUT", "/v1/rooms/r/bans/u", { ttlSeconds: 0 })).toMatchObject({
      status: 400,
      body: { error: { code: "bad_request", message: /ttlSeconds: must be at least 1/ } },
    });
    expect(await call("PUT", "/v1/rooms/r/mutes/u", { until: 5 })).toMatchObject({ status: 400, body: { error: { message: /unknown field\(s\): until/ } } });
    expect(await call("POST", "/v1/rooms/bad%20room/kick", { userId: "u" })).toMatchObject({ status: 400, body: { error: { message: /^room: / } } });
    expect(await call("POST", "/v1/rooms/r/kick", {})).toMatchObject({ status: 400, body: { error: { message: /userId: is required/ } } });
    expect(await call("GET", "/v1/rooms/r/messages?before=1-0&after=1-0")).toMatchObject({ status: 400, body: { error: { message: /before or after/ } } });
    const unauthorized = await fetch(`${base}/v1/rooms/r/bans`);
    expect(unauthorized.status).toBe(401);
    const text = await fetch(`${base}/v1/rooms/r/kick`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "text/plain" },
      body: "u",
    });
    expect(text.status).toBe(415);
  });
});
