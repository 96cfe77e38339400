import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWTPayload } from "jose";
import {
  closeAllChatClients,
  closeAllClients,
  connectChatClient,
  connectClient,
  record,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, SessionEnded } from "@chat/shared";

const SECRET = "a-test-secret-that-is-long-enough-0123456789";
const hs256 = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** A token as an identity provider would sign it; `claims` override the defaults. */
function hsToken(claims: JWTPayload = {}, { alg = "HS256", key = hs256 }: { alg?: string; key?: Uint8Array } = {}): Promise<string> {
  return new SignJWT({ name: "Alice", ...claims })
    .setProtectedHeader({ alg })
    .setSubject(String(claims.sub ?? "u-alice"))
    .setExpirationTime(claims.exp ?? now() + 600)
    .sign(key);
}

/** Resolves with the connect_error's message and code. */
async function refusal(url: string, auth: Record<string, unknown> | undefined): Promise<{ message: string; code?: string }> {
  const err = await connectClient(url, "", { auth }).then(
    (socket) => {
      socket.close();
      throw new Error("the connection was accepted");
    },
    (e: Error & { data?: { code?: string } }) => e,
  );
  return { message: err.message, code: err.data?.code };
}

describe("JWT auth with an HS256 secret", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", {
      env: { REDIS_URL: redis.url, AUTH_MODE: "jwt", JWT_SECRET: SECRET, JWT_ISSUER: "https://id.example", JWT_AUDIENCE: "chat" },
    });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  const valid = (claims: JWTPayload = {}) => hsToken({ iss: "https://id.example", aud: "chat", ...claims });

  it("accepts a valid token and takes the user from sub and name", async () => {
    const socket = await connectClient(pod.url, "", { auth: { token: await valid({ sub: "u-42", name: "Zoe" }) } });
    const ack = (await socket.emitWithAck("join", { room: "lobby" })) as Ack<{ members: { id: string; name: string }[] }>;
    expect(ack.ok && ack.members).toEqual([{ id: "u-42", name: "Zoe" }]);
  });

  it("accepts the token in an Authorization header too", async () => {
    const { io } = await import("socket.io-client");
    const socket = io(pod.url, { transports: ["websocket"], forceNew: true, reconnection: false, extraHeaders: { authorization: `Bearer ${await valid()}` } });
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("connect_error", reject));
    socket.close();
  });

  const failures: [string, () => Promise<Record<string, unknown> | undefined>, RegExp][] = [
    ["no token", async () => undefined, /token is required/],
    ["an empty token", async () => ({ token: "" }), /token is required/],
    ["a token that is not a JWT", async () => ({ token: "not.a.jwt" }), /^the token is not a JWT: expected three base64url parts separated by dots$/],
    [
      "a token signed with another secret",
      async () => ({ token: await hsToken({ iss: "https://id.example", aud: "chat" }, { key: new TextEncoder().encode("x".repeat(40)) }) }),
      /signature is not valid/,
    ],
    ["an expired token", async () => ({ token: await valid({ exp: now() - 60 }) }), /expired/],
    [
      "a token without exp",
      async () => ({ token: await new SignJWT({ sub: "u", aud: "chat", iss: "https://id.example" }).setProtectedHeader({ alg: "HS256" }).sign(hs256) }),
      /exp/,
    ],
    [
      "a token without sub",
      async () => ({
        token: await new SignJWT({ aud: "chat", iss: "https://id.example" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(hs256),
      }),
      /sub/,
    ],
    [
      "a token from another issuer",
      async () => ({ token: await valid({ iss: "https://evil.example" }) }),
      /^the token's iss claim is "https:\/\/evil.example"; this server expects "https:\/\/id.example"$/,
    ],
    [
      "a token for another audience",
      async () => ({ token: await valid({ aud: "billing" }) }),
      /^the token's aud claim is "billing"; this server expects "chat"$/,
    ],
    ["an HS512 token", async () => ({ token: await hsToken({ iss: "https://id.example", aud: "chat" }, { alg: "HS512" }) }), /algorithm/],
    [
      "an unsigned (alg none) token",
      async () => ({
        token: `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "u", exp: now() + 60, iss: "https://id.example", aud: "chat" })).toString("base64url")}.`,
      }),
      /not valid|algorithm/,
    ],
    ["a name that is too long", async () => ({ token: await valid({ name: "x".repeat(40) }) }), /name claim/],
    ["a rooms claim that is not a list", async () => ({ token: await valid({ rooms: "lobby" }) }), /rooms claim/],
    ["a token of 30 KB", async () => ({ token: "x".repeat(30_000) }), /not a JWT/],
  ];

  it.each(failures)("refuses %s with code unauthorized and a message for people, never a library code", async (_name, auth, message) => {
    const { code, message: text } = await refusal(pod.url, await auth());
    expect(code).toBe("unauthorized");
    expect(text).toMatch(message);
    expect(text).not.toMatch(/ERR_|JWS|JOSE/);
  });

  it("lets a token's rooms claim limit the rooms, by name and by prefix", async () => {
    const socket = await connectClient(pod.url, "", { auth: { token: await valid({ rooms: ["lobby", "team-*"] }) } });
    const join = (room: string) => socket.emitWithAck("join", { room }) as Promise<Ack>;
    expect((await join("lobby")).ok).toBe(true);
    expect((await join("team-red")).ok).toBe(true);
    const refused = await join("admin");
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.code).toBe("forbidden");
  });

  it("ends a session when its token expires, with a reason the client acts on", async () => {
    const socket = await connectClient(pod.url, "", { auth: { token: await valid({ exp: now() + 2 }) } });
    const ended = record<SessionEnded>(socket, "session_ended");
    const reason = await new Promise<string>((resolve) => socket.once("disconnect", resolve));
    expect(ended).toEqual([{ reason: "token_expired", reconnect: true }]);
    expect(reason).toBe("io server disconnect");
  });

  it("reconnects the client helper with a fresh token when the old one expires", async () => {
    let issued = 0;
    const client = await connectChatClient(pod.url, "", {
      auth: async () => ({ token: await valid({ sub: "u-refresh", exp: now() + (issued++ === 0 ? 2 : 600) }) }),
    });
    await client.join("refresh");
    const ended = new Promise<SessionEnded>((resolve) => client.on("session_ended", resolve));
    expect(await ended).toEqual({ reason: "token_expired", reconnect: true });
    await waitFor(() => client.socket.connected && issued === 2, { what: "the helper to reconnect with a second token" });
    const ack = await client.send("refresh", "back again");
    expect(ack.id).toBeTruthy();
    closeAllChatClients();
  });
});

describe("JWT auth with public keys", () => {
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwks: Server;
  let jwksHits = 0;
  let rsPod: ServiceProcess;
  let jwksPod: ServiceProcess;

  beforeAll(async () => {
    rsa = await generateKeyPair("RS256");
    ec = await generateKeyPair("ES256");
    const keys = [{ ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" }];
    jwks = createServer((_req, res) => {
      jwksHits++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    [rsPod, jwksPod] = await Promise.all([
      // A PEM in one line with \n escapes, as it often arrives from a Secret.
      startService("chat", { env: { AUTH_MODE: "jwt", JWT_PUBLIC_KEY: (await exportSPKI(rsa.publicKey)).replace(/\n/g, "\\n") } }),
      startService("chat", { env: { AUTH_MODE: "jwt", JWT_JWKS_URL: jwksUrl } }),
    ]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    jwks?.close();
  });

  const signed = (alg: string, key: CryptoKey | Uint8Array, kid?: string) =>
    new SignJWT({ name: "Rita" })
      .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
      .setSubject("u-rita")
      .setExpirationTime("10m")
      .sign(key);

  it("accepts an RS256 token signed with the matching private key", async () => {
    const socket = await connectClient(rsPod.url, "", { auth: { token: await signed("RS256", rsa.privateKey) } });
    expect(socket.connected).toBe(true);
  });

  it("refuses an RS256 token signed with another key", async () => {
    const other = await generateKeyPair("RS256");
    const { code, message } = await refusal(rsPod.url, { token: await signed("RS256", other.privateKey) });
    expect(code).toBe("unauthorized");
    expect(message).toMatch(/signature is not valid/);
  });

  it("refuses an HS256 token made with the public key as its secret (algorithm confusion)", async () => {
    const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    const { code, message } = await refusal(rsPod.url, { token: await signed("HS256", pem) });
    expect(code).toBe("unauthorized");
    expect(message).toMatch(/algorithm/);
  });

  it("accepts an ES256 token whose key comes from the JWKS URL, and caches the key set", async () => {
    for (let i = 0; i < 3; i++) {
      const socket = await connectClient(jwksPod.url, "", { auth: { token: await signed("ES256", ec.privateKey, "ec-1") } });
      socket.close();
    }
    expect(jwksHits).toBe(1);
  });

  it("refuses a token whose kid the JWKS does not hold", async () => {
    const { code, message } = await refusal(jwksPod.url, { token: await signed("ES256", ec.privateKey, "unknown-kid") });
    expect(code).toBe("unauthorized");
    expect(message).toMatch(/key this server does not know/);
  });
});
