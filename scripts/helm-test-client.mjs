#!/usr/bin/env node
// The chart's `helm test` hook (charts/chat/templates/tests/test-delivery.yaml) and the container
// topology check (scripts/check-images.sh) run this script inside the chat image. It proves that
// a message sent on one chat pod reaches a client on another pod:
//
//  1. every pod: one client on each chat pod (pod addresses from the headless Service's DNS, or
//     CHAT_POD_URLS), all in one room; every client sends one message and must receive every
//     client's message. With MIN_PODS >= 2 this fails unless there are two ready pods or more.
//  2. through the Service: clients connect to CHAT_URL (the Service users reach) until they sit on
//     MIN_SERVICE_PODS different pods (at least SERVICE_CLIENTS clients, at most
//     MAX_SERVICE_CLIENTS). Which pod a client landed on is read from the pods' own
//     chat_connected_clients gauge (/metrics on CHAT_METRICS_PORT): the one that went up by one.
//     Then they join one room, each sends one message, and every client must receive all of them.
//
// Environment:
//   CHAT_URL            the Service, e.g. http://chat:80 (required)
//   CHAT_POD_URLS       comma-separated pod URLs (instead of DNS), e.g. http://chat-a:3000,...
//   CHAT_HEADLESS_HOST  the headless Service's name, resolved to one address per ready pod
//   CHAT_POD_PORT       the pods' HTTP port for those addresses (default 3000)
//   MIN_PODS            fewest distinct pods the cross-pod step needs (default 2)
//   SERVICE_CLIENTS     fewest clients through the Service (default 6)
//   MAX_SERVICE_CLIENTS most clients tried through the Service to reach MIN_SERVICE_PODS (default 30)
//   CHAT_METRICS_PORT   the pods' probe/metrics port (default 9100)
//   SESSION_AFFINITY    the Service's sessionAffinity: with ClientIP every client lands on one pod
//   MIN_SERVICE_PODS    pods the Service clients must cover (default 2 with 2+ pods and no affinity, else 1)
//   AUTH_MODE           open (auth: { name }) or jwt (auth: { token })
//   JWT_SECRET          with AUTH_MODE=jwt: signs an HS256 token per client (claims sub, name, exp,
//                       and iss / aud from JWT_ISSUER / JWT_AUDIENCE when set)
//   TEST_TOKEN          with AUTH_MODE=jwt and no JWT_SECRET (public key / JWKS modes): a token to use
//   JWT_SECRET_FILE, TEST_TOKEN_FILE  the same, read from a file (the chart mounts its Secrets as files)
//   CHAT_TLS            1: the pods serve https/wss (chat.tls); the certificate is not verified
//   TIMEOUT_SECONDS     whole-run deadline (default 60)
// Exit status 0 when every message arrived everywhere, 1 with a line saying what is missing.
import { createHmac, randomBytes } from "node:crypto";
import { resolve4, resolve6 } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { io } from "socket.io-client";

const env = process.env;
const say = (msg) => console.log(`helm-test: ${msg}`);
const fail = (msg) => {
  console.error(`helm-test: FAIL: ${msg}`);
  process.exit(1);
};

// Run as a script (the helm test) unless imported for signHs256 (scripts/e2e-day-two.mjs).
const direct = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const deadline = Number(env.TIMEOUT_SECONDS ?? 60) * 1000;
if (direct) setTimeout(() => fail(`did not finish within ${deadline / 1000}s`), deadline).unref();

const authMode = env.AUTH_MODE ?? "open";
// The chart mounts secrets as files (JWT_SECRET_FILE, TEST_TOKEN_FILE) so they are not in the
// pod's environment; the plain variables still work when the script runs by hand.
const fromFile = (file, value) => (file ? readFileSync(file, "utf8").trim() : value);
const jwtSecret = fromFile(env.JWT_SECRET_FILE, env.JWT_SECRET);
const testToken = fromFile(env.TEST_TOKEN_FILE, env.TEST_TOKEN);
// CHAT_TLS=1: the pods serve https/wss (chat.tls). Pod IPs are not in the certificate, and this
// test checks delivery, not the certificate, so it does not verify it.
const tls = env.CHAT_TLS === "1";
const scheme = tls ? "https" : "http";
const runId = randomBytes(4).toString("hex");

function b64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** An HS256 JWT, signed with node:crypto alone. */
export function signHs256(claims, secret) {
  const head = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

function authFor(name) {
  if (authMode === "open") return { name };
  if (authMode !== "jwt") fail(`AUTH_MODE=${authMode} is neither open nor jwt`);
  if (jwtSecret) {
    const exp = Math.floor(Date.now() / 1000) + 300;
    const claims = { sub: name, name, exp };
    if (env.JWT_ISSUER) claims.iss = env.JWT_ISSUER;
    if (env.JWT_AUDIENCE) claims.aud = env.JWT_AUDIENCE;
    return { token: signHs256(claims, jwtSecret) };
  }
  if (testToken) return { token: testToken };
  fail("AUTH_MODE=jwt needs JWT_SECRET (HS256) or TEST_TOKEN (set tests.tokenSecret in the chart)");
}

function connect(url, name) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      auth: authFor(name),
      transports: ["websocket"],
      rejectUnauthorized: !tls,
      reconnection: false,
      forceNew: true,
      timeout: 10_000,
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(new Error(`${name} could not connect to ${url}: ${err.message}${err.data?.code ? ` (${err.data.code})` : ""}`));
    });
  });
}

function emitAck(socket, event, payload) {
  return new Promise((resolve, reject) => {
    socket.timeout(10_000).emit(event, payload, (err, ack) => {
      if (err) return reject(new Error(`no ack for ${event} within 10s`));
      if (!ack?.ok) return reject(new Error(`${event} refused: ${JSON.stringify(ack?.error ?? ack)}`));
      resolve(ack);
    });
  });
}

async function connectClient(label, i, url, room) {
  const name = `${label}-${i}`;
  const socket = await connect(url, name);
  const seen = new Set();
  socket.on("message", (m) => m?.room === room && seen.add(m.text));
  return { name, url, socket, seen };
}

/** Everyone joins `room`, everyone sends one message, everyone must receive all of them. */
async function allToAll(label, targets, room) {
  const clients = [];
  try {
    for (const [i, url] of targets.entries()) clients.push(await connectClient(label, i, url, room));
    await exchange(label, clients, room);
  } finally {
    for (const c of clients) c.socket.close();
  }
}

async function exchange(label, clients, room) {
  for (const c of clients) await emitAck(c.socket, "join", { room });
  const texts = clients.map((c) => `from ${c.name} (${runId})`);
  await Promise.all(clients.map((c, i) => emitAck(c.socket, "message", { room, text: texts[i] })));
  const until = Date.now() + 15_000;
  for (;;) {
    const missing = clients.flatMap((c) => texts.filter((t) => !c.seen.has(t)).map((t) => `${c.name} (${c.url}) lacks "${t}"`));
    if (missing.length === 0) break;
    if (Date.now() > until) throw new Error(`${label}: ${missing.length} deliveries missing: ${missing.slice(0, 5).join("; ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  say(`${label}: ${clients.length} clients, ${clients.length ** 2} deliveries, all arrived`);
}

/** chat_connected_clients of each pod (by pod URL), or undefined where /metrics does not answer. */
async function connectedByPod(pods) {
  const port = env.CHAT_METRICS_PORT ?? "9100";
  return Promise.all(
    pods.map(async (pod) => {
      const url = new URL(pod);
      url.protocol = "http:"; // the probe port is plain HTTP even when the public port serves TLS
      url.port = port;
      url.pathname = "/metrics";
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
        const m = /^chat_connected_clients(?:\{[^}]*\})? (\d+)/m.exec(await res.text());
        return m ? Number(m[1]) : undefined;
      } catch {
        return undefined;
      }
    }),
  );
}

/** Clients through the Service until they sit on `minPods` different pods; then all-to-all. */
async function throughService(pods, room) {
  const minClients = Number(env.SERVICE_CLIENTS ?? 6);
  const maxClients = Math.max(minClients, Number(env.MAX_SERVICE_CLIENTS ?? 30));
  const affinity = env.SESSION_AFFINITY === "ClientIP";
  const minPods = Number(env.MIN_SERVICE_PODS ?? (pods.length >= 2 && !affinity ? 2 : 1));
  const clients = [];
  const landed = new Map(); // pod URL → clients seen landing there
  try {
    let before = minPods > 1 ? await connectedByPod(pods) : [];
    if (minPods > 1 && before.every((n) => n === undefined)) throw new Error(`no pod answered /metrics on port ${env.CHAT_METRICS_PORT ?? "9100"}`);
    while (clients.length < minClients || (landed.size < minPods && clients.length < maxClients)) {
      clients.push(await connectClient("via-service", clients.length, env.CHAT_URL, room));
      if (minPods <= 1) continue;
      const after = await connectedByPod(pods);
      const rose = pods.filter((_, i) => before[i] !== undefined && after[i] !== undefined && after[i] > before[i]);
      // Exactly one pod went up: this client is there (other traffic would blur it; then skip).
      if (rose.length === 1 && after[pods.indexOf(rose[0])] - before[pods.indexOf(rose[0])] === 1) landed.set(rose[0], (landed.get(rose[0]) ?? 0) + 1);
      before = after;
    }
    const spread = [...landed].map(([pod, n]) => `${pod}: ${n}`).join(", ");
    if (landed.size < minPods)
      throw new Error(`${clients.length} clients through ${env.CHAT_URL} landed on ${landed.size} pod(s) (${spread || "none identified"}), need ${minPods}`);
    if (minPods > 1) say(`via-service: ${clients.length} clients through ${env.CHAT_URL} on ${landed.size} pods (${spread})`);
    else say(`via-service: ${clients.length} clients through ${env.CHAT_URL}${affinity ? " (ClientIP affinity: one pod by design)" : ""}`);
    await exchange("via-service", clients, room);
  } finally {
    for (const c of clients) c.socket.close();
  }
}

async function podUrls() {
  if (env.CHAT_POD_URLS)
    return env.CHAT_POD_URLS.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  if (!env.CHAT_HEADLESS_HOST) return [];
  const port = env.CHAT_POD_PORT ?? "3000";
  const v4 = await resolve4(env.CHAT_HEADLESS_HOST).catch(() => []);
  const v6 = v4.length ? [] : await resolve6(env.CHAT_HEADLESS_HOST).catch(() => []);
  return [...v4.map((ip) => `${scheme}://${ip}:${port}`), ...v6.map((ip) => `${scheme}://[${ip}]:${port}`)];
}

async function main() {
  if (!env.CHAT_URL) fail("CHAT_URL is required");
  const minPods = Number(env.MIN_PODS ?? 2);
  const pods = (await podUrls()).sort().slice(0, 10);
  say(`auth ${authMode}; ${pods.length} chat pod(s): ${pods.join(" ") || "none found"}`);
  if (pods.length < minPods) fail(`found ${pods.length} ready chat pod(s), need at least ${minPods} for a cross-pod check`);
  if (pods.length >= 2) await allToAll("every-pod", pods, `helm-test.xpod.${runId}`);
  await throughService(pods, `helm-test.svc.${runId}`);
  say("PASS");
  process.exit(0);
}

if (direct) main().catch((err) => fail(err instanceof Error ? err.message : String(err)));
