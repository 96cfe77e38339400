// Issue 24, the HTTP surface of the chat port and the probe port: each test performs an attack
// against real processes and shows it fails.
import { connect, type Socket as TcpSocket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, type JWTPayload } from "jose";
import {
  closeAllClients,
  connectClient,
  metricValue,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

function token(sub: string, claims: JWTPayload = {}): Promise<string> {
  return new SignJWT({ name: sub, ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(now() + 600)
    .sign(key);
}

async function members(pod: ServiceProcess, room: string, bearer?: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${pod.url}/v1/rooms/${room}/members`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

describe("issue 24 #2: the members endpoint in jwt mode", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", { env: { REDIS_URL: redis.url, AUTH_MODE: "jwt", JWT_SECRET: SECRET, RATE_LIMIT_MEMBERS_PER_MINUTE: "3" } });
    const insider = await connectClient(pod.url, "", { auth: { token: await token("u-insider") } });
    expect(((await insider.emitWithAck("join", { room: "secret-room" })) as { ok: boolean }).ok).toBe(true);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("refuses a request without a token with 401 and a body that says what to send", async () => {
    const { status, body, headers } = await members(pod, "secret-room");
    expect(status).toBe(401);
    expect(headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(body).toEqual({ error: { code: "unauthorized", message: expect.stringMatching(/Authorization: Bearer <token>/) } });
  });

  it("refuses a forged token with 401", async () => {
    // Flip a character well inside the signature: the last one of a base64url HS256 signature
    // carries padding bits a decoder may ignore, so changing it can leave the signature intact.
    const good = await token("u-x");
    const at = good.length - 10;
    const forged = good.slice(0, at) + (good[at] === "A" ? "B" : "A") + good.slice(at + 1);
    const { status, body } = await members(pod, "secret-room", forged);
    expect(status).toBe(401);
    expect(body.error).toMatchObject({ code: "unauthorized", message: expect.stringMatching(/^the token's signature is not valid/) });
  });

  it("refuses with 403 a token whose rooms claim does not allow the room", async () => {
    const { status, body } = await members(pod, "secret-room", await token("u-outsider", { rooms: ["public-*"] }));
    expect(status).toBe(403);
    expect(body).toEqual({ error: { code: "forbidden", message: "your token does not allow room secret-room" } });
  });

  it("lists the members for a token that may join the room, and throttles it per user with 429 and Retry-After", async () => {
    const bearer = await token("u-reader", { rooms: ["secret-*"] });
    const first = await members(pod, "secret-room", bearer);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ room: "secret-room", members: [{ id: "u-insider", name: "u-insider" }] });
    // The 403 above and these count per user: 3 a minute for this one.
    await members(pod, "secret-room", bearer);
    await members(pod, "secret-room", bearer);
    const limited = await members(pod, "secret-room", bearer);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.body.error).toMatchObject({ code: "rate_limited", retryAfterMs: expect.any(Number) });
    // Another user is not affected.
    expect((await members(pod, "secret-room", await token("u-reader2"))).status).toBe(200);
  });
});

describe("issue 24 #8 and hardening: probe port, page headers, slow and piled-up connections", () => {
  let pod: ServiceProcess;

  beforeAll(async () => {
    pod = await startService("chat", { env: { MAX_OPEN_PER_ADDRESS: "100" } });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
  });

  it("does not serve /debug/bus unless DEBUG_ENDPOINTS=1", async () => {
    expect((await fetch(`${pod.probeUrl}/debug/bus`)).status).toBe(404);
  });

  it("sends the page with a CSP that forbids framing, nosniff and no-referrer, and serves no source map", async () => {
    const page = await fetch(`${pod.url}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("object-src 'none'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const script = await (await fetch(`${pod.url}/app.js`)).text();
    expect(script).not.toMatch(/sourceMappingURL/);
    expect((await fetch(`${pod.url}/app.js.map`)).status).toBe(404);
  });

  it("caps one address's open sockets at MAX_OPEN_PER_ADDRESS and closes those that never finish their headers (slowloris)", async () => {
    const sockets: TcpSocket[] = [];
    const closed = new Set<TcpSocket>();
    for (let i = 0; i < 150; i++) {
      const socket = connect(pod.port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.on("close", () => closed.add(socket));
      // Read what comes (a 408), so that the server's close reaches this end.
      socket.resume();
      // Headers begun, never finished.
      socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
      sockets.push(socket);
    }
    await waitFor(() => closed.size >= 50, { what: "the sockets over the cap to be closed at once" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    // At most 100 are held: the earlier tests' keep-alive sockets may still count for a few seconds.
    expect(closed.size).toBeLessThanOrEqual(55);
    expect(await metricValue(pod, 'chat_rate_limited_total{kind="open_socket"}')).toBe(closed.size);
    // The 100 others are dropped once the 10 s header timeout passes (Node checks every second).
    await waitFor(() => closed.size === 150, { timeoutMs: 15_000, what: () => `the slow sockets to time out (${closed.size} closed)` });
    // And a normal client gets in afterwards.
    expect((await fetch(`${pod.url}/`)).status).toBe(200);
  });

  it("counts long-polling sessions against the same cap: the 101st session from one address is refused", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 105; i++) {
      const res = await fetch(`${pod.url}/socket.io/?EIO=4&transport=polling`);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses.slice(0, 100).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(100)).toEqual([403, 403, 403, 403, 403]);
    expect(await metricValue(pod, 'chat_rate_limited_total{kind="open_session"}')).toBe(5);
  });
});
