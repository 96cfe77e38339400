import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { io, type Socket } from "socket.io-client";
import type { Ack, ChatMessage } from "@chat/shared";
import { record, startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";

// Certificates made with openssl: a private CA (as cert-manager's CA issuer would be) and two
// server certificates for localhost/127.0.0.1, the second one standing for a renewal.
let dir: string;
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
function issue(name: string): void {
  writeFileSync(join(dir, "san.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.csr`);
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-out",
    `${name}.pem`,
    "-extfile",
    "san.cnf",
  );
}

/**
 * A Secret volume as the kubelet writes it: tls.crt and tls.key are symlinks into ..data, itself
 * a symlink to a timestamped directory; an update writes a new directory and renames a new
 * ..data over the old one, so both files change at once.
 */
let generation = 0;
function publish(mount: string, cert: string, key: string): void {
  const version = `..v${++generation}`;
  mkdirSync(join(mount, version));
  writeFileSync(join(mount, version, "tls.crt"), readFileSync(join(dir, cert)));
  writeFileSync(join(mount, version, "tls.key"), readFileSync(join(dir, key)));
  symlinkSync(version, join(mount, "..data_tmp"));
  renameSync(join(mount, "..data_tmp"), join(mount, "..data"));
  if (generation === 1) {
    symlinkSync("..data/tls.crt", join(mount, "tls.crt"));
    symlinkSync("..data/tls.key", join(mount, "tls.key"));
  }
}

/** The CN of the certificate the server presents to a new connection. */
function servedName(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve(String(cn));
    });
    socket.once("error", reject);
  });
}

describe("TLS in the chat pod (TLS_CERT_FILE, TLS_KEY_FILE)", () => {
  let redis: RedisServer;
  let chat: ServiceProcess;
  let mount: string;
  let ca: Buffer;
  const sockets: Socket[] = [];

  /** A Socket.IO client over wss://; `trustCa: false` leaves it with the system's CAs only. */
  function wss(name: string, { trustCa = true } = {}): Promise<Socket> {
    const socket = io(`wss://localhost:${chat.port}`, {
      auth: { name },
      transports: ["websocket"],
      ca: trustCa ? ca.toString() : undefined,
      reconnection: false,
      forceNew: true,
      timeout: 5000,
    });
    sockets.push(socket);
    return new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", reject);
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "chat-tls-"));
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem");
    issue("chat-one");
    issue("chat-two");
    ca = readFileSync(join(dir, "ca.pem"));
    mount = join(dir, "mount");
    mkdirSync(mount);
    publish(mount, "chat-one.pem", "chat-one.key");
    redis = await startRedis();
    chat = await startService("chat", { env: { REDIS_URL: redis.url, TLS_CERT_FILE: join(mount, "tls.crt"), TLS_KEY_FILE: join(mount, "tls.key") } });
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await stopAllServices();
    await redis?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves wss:// with the mounted certificate: clients that trust its CA exchange messages, others are refused", async () => {
    expect(await servedName(chat.port, ca)).toBe("chat-one");
    const [alice, bob] = await Promise.all([wss("alice"), wss("bob")]);
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "tls" })) as Ack).ok).toBe(true);
    const inbox = record<ChatMessage>(bob, "message");
    expect(((await alice.emitWithAck("message", { room: "tls", text: "over wss" })) as Ack).ok).toBe(true);
    await waitFor(() => inbox.length === 1, { what: "bob to get alice's message over wss" });
    await expect(wss("mallory", { trustCa: false })).rejects.toThrow();
  });

  it("serves a renewed certificate to new connections once the Secret's files are swapped, and keeps open ones", async () => {
    const open = await wss("carol");
    expect(((await open.emitWithAck("join", { room: "renewal" })) as Ack).ok).toBe(true);
    publish(mount, "chat-two.pem", "chat-two.key");
    await waitFor(async () => (await servedName(chat.port, ca)) === "chat-two", { what: "new connections to get the renewed certificate" });
    await chat.waitForLog((l) => /TLS certificate reloaded/.test(l.msg));
    const dave = await wss("dave");
    expect(((await dave.emitWithAck("join", { room: "renewal" })) as Ack).ok).toBe(true);
    const inbox = record<ChatMessage>(dave, "message");
    expect(open.connected).toBe(true);
    expect(((await open.emitWithAck("message", { room: "renewal", text: "still here" })) as Ack).ok).toBe(true);
    await waitFor(() => inbox.length === 1, { what: "the connection opened before the renewal to keep working" });
  });

  it("keeps the current certificate when the new files do not load (a key from another pair), and says so", async () => {
    publish(mount, "chat-one.pem", "chat-two.key");
    await chat.waitForLog((l) => /do not load; keeping the current certificate/.test(l.msg));
    expect(await servedName(chat.port, ca)).toBe("chat-two");
    expect((await wss("erin")).connected).toBe(true);
  });

  it("refuses to start with a certificate and no key, and says which variable is missing", async () => {
    const half = await startService("chat", { wait: false, env: { TLS_CERT_FILE: join(mount, "tls.crt") } });
    expect(await half.exited).toBe(1);
    expect(half.rawOutput()).toMatch(/TLS_KEY_FILE: is required with TLS_CERT_FILE/);
  });
});
