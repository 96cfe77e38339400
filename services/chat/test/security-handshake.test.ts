// Issue 24, the handshake: each test performs an attack against real processes and shows it fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, type JWTPayload } from "jose";
import { Redis } from "ioredis";
import type { Socket as NetSocket } from "node:net";
import WebSocket from "ws";
import { io, type Socket } from "socket.io-client";
import { closeAllClients, connectClient, startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);
const JWT_ENV = { AUTH_MODE: "jwt", JWT_SECRET: SECRET };

function token(sub: string, claims: JWTPayload = {}, { iat = true }: { iat?: boolean } = {}): Promise<string> {
  const jwt = new SignJWT({ name: sub, ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime(claims.exp ?? now() + 600);
  if (iat) jwt.setIssuedAt(claims.iat ?? now());
  return jwt.sign(key);
}

type Refusal = Error & { data?: { code?: string; retryAfterMs?: number } };

/** Connects and resolves with the socket, or with the connect_error. */
function attempt(url: string, auth: Record<string, unknown> | undefined, headers: Record<string, string> = {}): Promise<Socket | Refusal> {
  const socket = io(url, { auth, transports: ["websocket"], forceNew: true, reconnection: false, extraHeaders: headers });
  return new Promise((resolve) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      resolve(err);
    });
  });
}

const codeOf = (result: Socket | Refusal) => (result instanceof Error ? result.data?.code : "connected");

/** Sends a Socket.IO CONNECT on a raw WebSocket and resets the TCP connection right after. */
function connectAndReset(url: string, auth: Record<string, unknown>): Promise<void> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
  return new Promise((resolve, reject) => {
    ws.once("error", reject);
    ws.once("message", (data) => {
      expect((data as Buffer).toString()).toMatch(/^0\{/);
      ws.send(`40${JSON.stringify(auth)}`, () => {
        // RST, not FIN: no close handshake, the way a crashed client or a hostile one leaves.
        (ws as unknown as { _socket: NetSocket })._socket.resetAndDestroy();
        resolve();
      });
    });
  });
}

describe("issue 24 #1: anonymous handshakes do not spend anyone's connection budget", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", {
      env: { REDIS_URL: redis.url, ...JWT_ENV, RATE_LIMIT_CONNECTIONS_PER_IP: "120", RATE_LIMIT_CONNECTIONS_PER_USER: "3" },
    });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("lets a valid user in after 121 tokenless connects from the same address, which end rate_limited themselves", async () => {
    const codes: (string | undefined)[] = [];
    for (let batch = 0; batch < 121; batch += 25) {
      const round = await Promise.all(Array.from({ length: Math.min(25, 121 - batch) }, () => attempt(pod.url, undefined)));
      codes.push(...round.map(codeOf));
    }
    // Within a batch, Redis counts them in whatever order they arrive.
    expect(codes.filter((code) => code === "unauthorized")).toHaveLength(120);
    expect(codes.filter((code) => code === "rate_limited")).toHaveLength(1);

    const valid = await attempt(pod.url, { token: await token("u-valid") });
    expect(codeOf(valid)).toBe("connected");
    (valid as Socket).close();
  });

  it("counts successful connections per user: a user over their rate is refused, others from the same address are not", async () => {
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await attempt(pod.url, { token: await token("u-busy") }));
    expect(results.map(codeOf)).toEqual(["connected", "connected", "connected", "rate_limited"]);
    expect((results[3] as Refusal).message).toMatch(/too many new connections for this user/);
    const other = await attempt(pod.url, { token: await token("u-other") });
    expect(codeOf(other)).toBe("connected");
    for (const socket of [...results, other]) if (!(socket instanceof Error)) socket.close();
  });
});

describe("issue 24 #5: a handshake aborted by a TCP reset does not leak the user's connection count", () => {
  let redis: RedisServer;
  let db: Redis;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    pod = await startService("chat", { env: { REDIS_URL: redis.url, ...JWT_ENV, MAX_CONNECTIONS_PER_USER: "20", RATE_LIMIT_CONNECTIONS_PER_USER: "0" } });
  });

  afterAll(async () => {
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  it("still lets the user connect after 21 CONNECTs each followed at once by a TCP reset", async () => {
    const auth = { token: await token("u-victim") };
    for (let i = 0; i < 21; i++) await connectAndReset(pod.url, auth);
    // The pod may still be counting (then uncounting) an aborted handshake when the first real
    // connections arrive, so a refusal is retried until every aborted one is settled; a leaked
    // count never settles, and the wait fails.
    const sockets: Socket[] = [];
    await waitFor(
      async () => {
        while (sockets.length < 20) sockets.push(await connectClient(pod.url, "", { auth }).catch(() => undefined as unknown as Socket));
        const connected = sockets.filter((socket) => socket?.connected);
        sockets.splice(0, sockets.length, ...connected);
        return sockets.length === 20;
      },
      { what: "the user to hold 20 connections again", timeoutMs: 40_000 },
    );
    // Every aborted handshake was uncounted: the count in Redis is the 20 live connections.
    const counts = Object.values(await db.hgetall("chat:connections:{u-victim}")).map(Number);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20);
    expect(pod.rawOutput()).not.toMatch(/TypeError|unhandled/i);
  });
});

describe("issue 24 #9: tokens that would outlive their revocation", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", { env: { REDIS_URL: redis.url, ...JWT_ENV, JWT_REQUIRE_JTI: "1" } });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("refuses a 5-year token, which the denylist could not hold, with a message naming JWT_MAX_LIFETIME_SECONDS", async () => {
    const refused = (await attempt(pod.url, { token: await token("u-long", { jti: "t-long", exp: now() + 5 * 365 * 86_400 }) })) as Refusal;
    expect(refused.data?.code).toBe("unauthorized");
    expect(refused.message).toMatch(/lives longer than this server allows .*JWT_MAX_LIFETIME_SECONDS/);
  });

  it("refuses a token issued in the future, and accepts one within the clock tolerance", async () => {
    const future = (await attempt(pod.url, { token: await token("u-future", { jti: "t-future", iat: now() + 3600 }) })) as Refusal;
    expect(future.data?.code).toBe("unauthorized");
    expect(future.message).toMatch(/iat claim is in the future/);
    const skewed = await attempt(pod.url, { token: await token("u-skew", { jti: "t-skew", iat: now() + 20 }) });
    expect(codeOf(skewed)).toBe("connected");
    (skewed as Socket).close();
  });

  it("refuses a token without a jti when JWT_REQUIRE_JTI is set, since it could never be revoked", async () => {
    const refused = (await attempt(pod.url, { token: await token("u-nojti") })) as Refusal;
    expect(refused.data?.code).toBe("unauthorized");
    expect(refused.message).toMatch(/no jti claim/);
  });
});

describe("issue 24 #10: one pod in another auth mode cannot join a jwt deployment", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("stops a pod started without AUTH_MODE on a jwt deployment's Redis: exit 1 with a clear line, no client served", async () => {
    const jwtPod = await startService("chat", { pod: "pinned-jwt", env: { REDIS_URL: redis.url, ...JWT_ENV } });
    const openPod = await startService("chat", { pod: "stray-open", env: { REDIS_URL: redis.url }, wait: false });
    expect(await openPod.exited).toBe(1);
    const line = openPod.logs.find((l) => l.level === 60);
    expect(line?.msg).toMatch(/AUTH_MODE=open, but this deployment runs with AUTH_MODE="jwt" \(Redis key chat:auth:mode\)/);
    // The jwt pod still refuses a name without a token.
    expect(codeOf(await attempt(jwtPod.url, { name: "mallory" }))).toBe("unauthorized");
  });
});

describe("issue 24 #11: X-Forwarded-For is believed only from the configured proxies", () => {
  let redis: RedisServer;
  let behindLoopback: ServiceProcess;
  let behindOther: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, RATE_LIMIT_CONNECTIONS_PER_IP: "2" };
    [behindLoopback, behindOther] = await Promise.all([
      startService("chat", { pod: "xff-loopback", env: { ...env, TRUST_PROXY: "loopback" } }),
      // Tests connect from 127.0.0.1, which is not this proxy: its header must be ignored.
      startService("chat", { pod: "xff-other", env: { ...env, TRUST_PROXY: "10.9.0.0/16" } }),
    ]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("ignores a forged X-Forwarded-For from a peer that is not a listed proxy: rotating it does not escape the limit", async () => {
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await attempt(behindOther.url, { name: `x${i}` }, { "x-forwarded-for": `198.51.100.${i}` }));
    expect(results.map(codeOf)).toEqual(["connected", "connected", "rate_limited"]);
    for (const socket of results) if (!(socket instanceof Error)) socket.close();
  });

  it("reads X-Forwarded-For from a listed proxy: each client address has its own budget", async () => {
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await attempt(behindLoopback.url, { name: `y${i}` }, { "x-forwarded-for": `198.51.100.${i}` }));
    expect(results.map(codeOf)).toEqual(["connected", "connected", "connected"]);
    for (const socket of results) if (!(socket instanceof Error)) socket.close();
  });

  it("exits 1 with one clear line for a TRUST_PROXY that is neither a hop count nor addresses", async () => {
    const pod = await startService("chat", { pod: "xff-bad", env: { TRUST_PROXY: "not-an-address" }, wait: false });
    expect(await pod.exited).toBe(1);
    expect(pod.rawOutput()).toMatch(/TRUST_PROXY: must be 0, a hop count, or proxy addresses\/CIDRs/);
  });
});
