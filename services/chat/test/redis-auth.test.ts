import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import type { Ack, ChatMessage } from "@chat/shared";
import { closeAllClients, connectClient, freePort, record, startRedis, startService, stopAllServices, waitFor, type RedisServer } from "@chat/testkit";

const PASSWORD = "s3cret-redis-password-0123456789";

describe("a password-protected Redis", () => {
  let redis: RedisServer;
  let bare: string;

  beforeAll(async () => {
    redis = await startRedis({ password: PASSWORD });
    bare = `redis://127.0.0.1:${redis.port}/0`;
    // An ACL user limited to what the services need: their keys and channels, no admin commands.
    const admin = new Redis(redis.url);
    await admin.acl("SETUSER", "chat", "on", ">chat-user-password-0123", "~*", "&*", "+@all", "-@admin", "-flushall", "-flushdb");
    await admin.quit();
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("takes the password from REDIS_PASSWORD (as from its own Secret) and from an ACL user in REDIS_URL", async () => {
    const [a, b] = await Promise.all([
      startService("chat", { env: { REDIS_URL: bare, REDIS_PASSWORD: PASSWORD } }),
      startService("chat", { env: { REDIS_URL: `redis://chat:chat-user-password-0123@127.0.0.1:${redis.port}/0` } }),
      startService("notifier", { env: { REDIS_URL: bare, REDIS_PASSWORD: PASSWORD, NOTIFIER_API_KEYS: "test-key-0123456789abcdef" } }),
    ]);
    const [alice, bob] = await Promise.all([connectClient(a.url, "alice"), connectClient(b.url, "bob")]);
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "locked" })) as Ack).ok).toBe(true);
    const inbox = record<ChatMessage>(bob, "message");
    expect(((await alice.emitWithAck("message", { room: "locked", text: "through the password" })) as Ack).ok).toBe(true);
    await waitFor(() => inbox.length === 1, { what: "bob to get alice's message across pods" });
  });

  it("stays unready, and says why, with a wrong password", async () => {
    const probePort = await freePort();
    const pod = await startService("chat", { env: { REDIS_URL: bare, REDIS_PASSWORD: "wrong-password", PROBE_PORT: String(probePort) }, wait: false });
    const line = await pod.waitForLog((l) => /WRONGPASS|NOAUTH|password/i.test(JSON.stringify(l)));
    expect(JSON.stringify(line)).not.toContain("wrong-password");
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${probePort}/readyz`).then(
          (r) => r.status,
          () => 0,
        )) === 503,
      { what: "readyz to answer 503" },
    );
  });
});

describe("Redis over TLS", () => {
  let dir: string;
  let redis: RedisServer;
  let tlsPort: number;

  beforeAll(async () => {
    // A private CA and a server certificate for 127.0.0.1, as a managed Redis would present.
    dir = mkdtempSync(join(tmpdir(), "redis-tls-"));
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    writeFileSync(join(dir, "san.cnf"), "subjectAltName=IP:127.0.0.1\n");
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem");
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
    openssl(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      "server.pem",
      "-extfile",
      "san.cnf",
    );
    tlsPort = await freePort();
    redis = await startRedis({
      password: PASSWORD,
      args: [
        "--tls-port",
        String(tlsPort),
        "--tls-cert-file",
        join(dir, "server.pem"),
        "--tls-key-file",
        join(dir, "server.key"),
        "--tls-ca-cert-file",
        join(dir, "ca.pem"),
        "--tls-auth-clients",
        "no",
      ],
    });
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("connects with rediss:// and a CA from REDIS_TLS_CA_FILE", async () => {
    const pod = await startService("chat", {
      env: { REDIS_URL: `rediss://127.0.0.1:${tlsPort}/0`, REDIS_PASSWORD: PASSWORD, REDIS_TLS_CA_FILE: join(dir, "ca.pem") },
    });
    const alice = await connectClient(pod.url, "alice");
    expect(((await alice.emitWithAck("join", { room: "tls" })) as Ack).ok).toBe(true);
  });

  it("refuses a server whose certificate it cannot verify, and says so", async () => {
    const probePort = await freePort();
    const pod = await startService("chat", {
      env: { REDIS_URL: `rediss://127.0.0.1:${tlsPort}/0`, REDIS_PASSWORD: PASSWORD, PROBE_PORT: String(probePort) },
      wait: false,
    });
    await pod.waitForLog((l) => /certificate/i.test(JSON.stringify(l)));
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${probePort}/readyz`).then(
          (r) => r.status,
          () => 0,
        )) === 503,
      { what: "readyz to answer 503" },
    );
  });
});
