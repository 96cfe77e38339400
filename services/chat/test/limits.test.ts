import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { io, type Socket } from "socket.io-client";
import {
  REDIS_ENGINES,
  closeAllClients,
  metricValue,
  record,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type RedisEngine,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, ChatMessage } from "@chat/shared";

type Refusal = Error & { data?: { code?: string; retryAfterMs?: number } };

/** Connects and resolves with the socket, or with the connect_error. */
function attempt(url: string, name: string, headers: Record<string, string> = {}): Promise<Socket | Refusal> {
  const socket = io(url, { auth: { name }, transports: ["websocket"], forceNew: true, reconnection: false, extraHeaders: headers });
  return new Promise((resolve) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      resolve(err);
    });
  });
}

const join = (socket: Socket, room: string) => socket.emitWithAck("join", { room }) as Promise<Ack>;
const send = (socket: Socket, room: string, text: string) => socket.emitWithAck("message", { room, text }) as Promise<Ack<{ id: string }>>;

describe.each(REDIS_ENGINES)("rate limits shared by every pod, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    const env = {
      ...redis.env,
      // 1 per second sustained plus a burst of 4 per 10 s: 5 in quick succession, 6 at most if
      // the sends straddle a second.
      RATE_LIMIT_MESSAGES_PER_SECOND: "1",
      RATE_LIMIT_MESSAGES_BURST: "4",
      RATE_LIMIT_CONNECTIONS_PER_IP: "4",
      TRUST_PROXY: "1",
      RATE_LIMIT_JOINS_PER_MINUTE: "3",
      MAX_ROOMS_PER_CONNECTION: "2",
      MAX_CONNECTIONS_PER_USER: "3",
    };
    pods = await Promise.all([startService("chat", { env, pod: "chat-a" }), startService("chat", { env, pod: "chat-b" })]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("limits one user's messages across both pods, not per pod", async () => {
    const sockets = await Promise.all(pods.map((pod, i) => attempt(pod.url, "dave", { "x-forwarded-for": `10.0.0.${i + 1}` })));
    const [a, b] = sockets as Socket[];
    await Promise.all([join(a!, "busy"), join(b!, "busy")]);
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => send(i % 2 ? b! : a!, "busy", `m${i}`)));
    const accepted = acks.filter((ack) => ack.ok).length;
    // Per pod the limit would have let 10 through.
    expect(accepted).toBeGreaterThanOrEqual(5);
    expect(accepted).toBeLessThanOrEqual(6);
    for (const ack of acks.filter((ack) => !ack.ok)) {
      expect(ack).toMatchObject({ ok: false, error: { code: "rate_limited" } });
      if (!ack.ok) {
        expect(Number.isInteger(ack.error.retryAfterMs)).toBe(true);
        expect(ack.error.retryAfterMs).toBeGreaterThan(0);
      }
    }
    const counted =
      (await metricValue(pods[0]!, 'chat_rate_limited_total{kind="message"}')) + (await metricValue(pods[1]!, 'chat_rate_limited_total{kind="message"}'));
    expect(counted).toBe(20 - accepted);
  });

  it("does not let one flooding user slow delivery for the others", async () => {
    const flooder = (await attempt(pods[0]!.url, "flood", { "x-forwarded-for": "10.0.1.1" })) as Socket;
    const alice = (await attempt(pods[0]!.url, "alice", { "x-forwarded-for": "10.0.1.2" })) as Socket;
    const bob = (await attempt(pods[1]!.url, "bob", { "x-forwarded-for": "10.0.1.3" })) as Socket;
    await Promise.all([join(flooder, "shared"), join(alice, "shared"), join(bob, "shared")]);
    const inbox = record<ChatMessage>(bob, "message");
    const flood = Promise.all(Array.from({ length: 2000 }, (_, i) => send(flooder, "shared", `spam ${i}`)));
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await send(alice, "shared", `hello ${i}`));
    expect(acks.every((ack) => ack.ok)).toBe(true);
    await waitFor(() => inbox.filter((m) => m.user.name === "alice").length === 5, { what: "bob to get alice's 5 messages" });
    const floodAcks = await flood;
    expect(floodAcks.filter((ack) => ack.ok).length).toBeLessThanOrEqual(6);
    expect(inbox.filter((m) => m.user.name === "flood").length).toBe(floodAcks.filter((ack) => ack.ok).length);
  });

  it("limits new connections per client address across both pods, by X-Forwarded-For behind a trusted proxy", async () => {
    const from = { "x-forwarded-for": "203.0.113.7" };
    const first = await Promise.all([
      attempt(pods[0]!.url, "c1", from),
      attempt(pods[1]!.url, "c2", from),
      attempt(pods[0]!.url, "c3", from),
      attempt(pods[1]!.url, "c4", from),
    ]);
    expect(first.every((s) => !(s instanceof Error))).toBe(true);
    const fifth = (await attempt(pods[1]!.url, "c5", from)) as Refusal;
    expect(fifth).toBeInstanceOf(Error);
    expect(fifth.data).toMatchObject({ code: "rate_limited" });
    expect(fifth.data!.retryAfterMs).toBeGreaterThan(0);
    expect(fifth.message).toMatch(/too many new connections/);
    // Another address, through the same proxy, is not affected.
    expect(await attempt(pods[1]!.url, "c6", { "x-forwarded-for": "203.0.113.8" })).not.toBeInstanceOf(Error);
  });

  it("limits joins per connection", async () => {
    const socket = (await attempt(pods[0]!.url, "joiner", { "x-forwarded-for": "10.0.2.1" })) as Socket;
    const acks = [];
    for (const room of ["r1", "r1", "r1", "r1"]) acks.push(await join(socket, room));
    expect(acks.map((ack) => (ack.ok ? "ok" : ack.error.code))).toEqual(["ok", "ok", "ok", "rate_limited"]);
  });

  it("limits the rooms one connection is in", async () => {
    const socket = (await attempt(pods[0]!.url, "roomer", { "x-forwarded-for": "10.0.2.2" })) as Socket;
    expect((await join(socket, "x1")).ok).toBe(true);
    expect((await join(socket, "x2")).ok).toBe(true);
    const third = await join(socket, "x3");
    expect(third).toMatchObject({ ok: false, error: { code: "limit_exceeded" } });
    expect((await socket.emitWithAck("leave", { room: "x1" })) as Ack).toMatchObject({ ok: true });
    expect((await join(socket, "x3")).ok).toBe(true);
  });

  it("caps one user's connections across pods, and frees a slot when one closes", async () => {
    const carol: Socket[] = [];
    for (let i = 0; i < 3; i++) carol.push((await attempt(pods[i % 2]!.url, "carol", { "x-forwarded-for": `10.0.3.${i}` })) as Socket);
    expect(carol.every((s) => s.connected)).toBe(true);
    const refused = (await attempt(pods[1]!.url, "carol", { "x-forwarded-for": "10.0.3.9" })) as Refusal;
    expect(refused.data?.code).toBe("limit_exceeded");
    expect(refused.message).toMatch(/at most 3 connections/);
    carol[0]!.close();
    let n = 10;
    await waitFor(
      async () => {
        const next = await attempt(pods[1]!.url, "carol", { "x-forwarded-for": `10.0.3.${n++}` });
        return !(next instanceof Error);
      },
      { what: "carol's freed slot" },
    );
  });
});

describe("origins", () => {
  let pod: ServiceProcess;

  beforeAll(async () => {
    pod = await startService("chat", { env: { CORS_ORIGINS: "https://chat.example.com" } });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
  });

  it("lets a listed origin, the page's own origin and non-browsers connect", async () => {
    const cases: Record<string, string>[] = [{ origin: "https://chat.example.com" }, { origin: pod.url }, {}];
    for (const headers of cases) {
      const socket = await attempt(pod.url, "ok", headers);
      expect(socket).not.toBeInstanceOf(Error);
      (socket as Socket).close();
    }
  });

  it("refuses a WebSocket from any other origin with a connect_error that says why", async () => {
    const refused = (await attempt(pod.url, "evil", { origin: "https://evil.example" })) as Refusal;
    expect(refused).toBeInstanceOf(Error);
    expect(refused.data?.code).toBe("forbidden");
    expect(refused.message).toMatch(/origin \(https:\/\/evil.example\) may not connect: only the chat's own origin and those in its CORS_ORIGINS may/);
  });

  it("answers CORS for the listed origin only, never with *", async () => {
    const url = `${pod.url}/socket.io/?EIO=4&transport=polling`;
    const listed = await fetch(url, { headers: { origin: "https://chat.example.com" } });
    expect(listed.headers.get("access-control-allow-origin")).toBe("https://chat.example.com");
    await listed.body?.cancel();
    const other = await fetch(url, { headers: { origin: "https://evil.example" } });
    expect(other.status).toBe(403);
    expect(other.headers.get("access-control-allow-origin")).not.toBe("*");
    await other.body?.cancel();
  });
});
