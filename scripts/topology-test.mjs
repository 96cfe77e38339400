#!/usr/bin/env node
// Container-level topology test: the real images on a Docker network, run with the settings the
// chart renders. The chart is rendered with its default values (JWT auth with the generated HS256
// secret, the generated Redis password and notifier key; 2 chat replicas) and each pod spec is
// translated to `docker run`: user/group, read-only root, drop ALL, no new
// privileges, memory limit, command/args, env (ConfigMaps, Secrets decoded from the render,
// POD_NAME), emptyDir → tmpfs, ConfigMap volumes → read-only files, the Redis PVC → a volume,
// Service names → network aliases. Then:
//   1. Redis answers only with its password, and AOF is on;
//   2. 2 chat containers + 1 notifier come up ("... is up at" log line, then /readyz), the web
//      page is served, and a client without a token is refused;
//   3. a client on each chat container (official socket.io-client with a signed token, via
//      127.0.0.1 ports) gets the other's message, and both get a notifier event POSTed to the
//      notifier's HTTP API with the generated key;
//   4. the helm test script runs inside the chat image on the network, as the hook pod would
//      (the Service and headless Service names are network aliases of both chat containers);
//   5. `docker stop` on a chat container while a client of it is connected with its event loop
//      blocked (it never answers the close frame): the container drains, destroys that connection
//      and exits 0 as PID 1 within SHUTDOWN_DELAY_SECONDS + DRAIN_SECONDS + 2 s, the other keeps
//      serving; the notifier stops with exit 0 too.
// Everything it creates is removed on exit (also on Ctrl-C). Exits 1 with the reason.
//   CHAT_IMAGE_TAG (default "check"): tag of chat-platform/chat and chat-platform/notifier.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { get as httpGet } from "node:http";
import { io } from "socket.io-client";
import { createTopology, docker, dockerAsync, hostPort, logsOf } from "./lib/docker-pods.mjs";
import { render } from "./lib/helm.mjs";

const tag = process.env.CHAT_IMAGE_TAG ?? "check";
const run = randomBytes(3).toString("hex");
const prefix = `chattopo-${run}`;
const clients = [];
const t0 = Date.now();
const say = (msg) => console.log(`topology [${((Date.now() - t0) / 1000).toFixed(1)}s]: ${msg}`);

// image.registry empty: the images are built here as chat-platform/{chat,notifier}:<tag>, not pulled.
const objects = render("chat", ["--set", "chat.replicas=2", "--set", `image.tag=${tag}`, "--set", "image.registry="]);
const byKind = (kind, component) => objects.filter((o) => o.kind === kind && (!component || o.metadata.labels?.["app.kubernetes.io/component"] === component));
const topology = createTopology(prefix, objects);
const { created, resolveEnv, start } = topology;
const cleanup = () => {
  for (const c of clients) c.close();
  topology.cleanup();
};
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
process.on("exit", cleanup);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(200);
  }
}

/** Waits for the JSON "… is up at http://…:<port>/" line with a numeric port. */
async function waitUp(name, port) {
  await until(`${name} to log "is up at"`, () => {
    const state = docker(["inspect", "-f", "{{.State.Running}}", name]).stdout.trim();
    if (state !== "true") throw new Error(`${name} exited during start:\n${logsOf(name).slice(-3000)}`);
    return logsOf(name)
      .split("\n")
      .some((l) => {
        try {
          const j = JSON.parse(l);
          return /is up at http:\/\//.test(j.msg) && j.port === Number(port);
        } catch {
          return false;
        }
      });
  });
}

/** GET without keep-alive (as the kubelet probes): true on a 2xx. */
const httpOk = (url) =>
  new Promise((resolve) => {
    const req = httpGet(url, { agent: false, headers: { connection: "close" }, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode >= 200 && res.statusCode < 300);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });

/** An HS256 token the chat accepts (AUTH_MODE=jwt with the chart's generated JWT_SECRET). */
function token(name, env) {
  if (env.AUTH_MODE !== "jwt") return undefined;
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const claims = { sub: name, name, exp: Math.floor(Date.now() / 1000) + 600 };
  if (env.JWT_ISSUER) claims.iss = env.JWT_ISSUER;
  if (env.JWT_AUDIENCE) claims.aud = env.JWT_AUDIENCE;
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", env.JWT_SECRET).update(head).digest("base64url")}`;
}

function connect(url, name, env) {
  return new Promise((resolve, reject) => {
    const auth = env.AUTH_MODE === "jwt" ? { token: token(name, env) } : { name };
    const socket = io(url, { auth, transports: ["websocket"], reconnection: false, forceNew: true, timeout: 10_000 });
    clients.push(socket);
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${name} → ${url}: ${err.message}`)));
  });
}
const ack = (socket, event, payload) =>
  new Promise((resolve, reject) =>
    socket
      .timeout(10_000)
      .emit(event, payload, (err, res) =>
        err ? reject(new Error(`no ack for ${event}`)) : res?.ok ? resolve(res) : reject(new Error(`${event}: ${JSON.stringify(res)}`)),
      ),
  );

/**
 * A client in a process of its own that connects to `url`, joins `room`, says so on stdout, then
 * blocks its event loop for good: it never reads again nor answers a close frame.
 */
function busyClient(url, tokenValue, room) {
  const script = `
    const { io } = await import("socket.io-client");
    const s = io(process.env.URL, { auth: process.env.TOKEN ? { token: process.env.TOKEN } : { name: "busy" }, transports: ["websocket"], reconnection: false });
    s.on("connect", () => s.emit("join", { room: process.env.ROOM }, () => { console.log("joined"); setTimeout(() => { for (;;); }, 50); }));
    s.on("connect_error", (err) => { console.error(err.message); process.exit(1); });`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL(".", import.meta.url).pathname,
    env: { ...process.env, URL: url, TOKEN: tokenValue ?? "", ROOM: room },
    stdio: ["ignore", "pipe", "inherit"],
  });
  clients.push({ close: () => child.kill("SIGKILL") });
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => String(d).includes("joined") && setTimeout(resolve, 200, child));
    child.on("exit", (code) => reject(new Error(`the busy client exited (${code}) before joining`)));
  });
}

// ---------- the test ----------
async function main() {
  const [chatDeploy] = byKind("Deployment", "chat");
  const [notifierDeploy] = byKind("Deployment", "notifier");
  const [redisSts] = byKind("StatefulSet", "redis");
  const chatSvc = objects.find((o) => o.kind === "Service" && o.metadata.name === chatDeploy.metadata.name).metadata.name;
  const podsSvc = objects.find((o) => o.kind === "Service" && o.spec.clusterIP === "None").metadata.name;
  const redisSvc = byKind("Service", "redis")[0].metadata.name;
  const notifierSvc = byKind("Service", "notifier")[0].metadata.name;
  const chatImage = chatDeploy.spec.template.spec.containers[0].image;
  const notifierImage = notifierDeploy.spec.template.spec.containers[0].image;
  const grace = chatDeploy.spec.template.spec.terminationGracePeriodSeconds;
  say(`rendered: ${chatImage}, ${notifierImage}, ${redisSts.spec.template.spec.containers[0].image}; chat grace ${grace}s`);

  // 1. Redis
  const redisName = `${prefix}-redis`;
  const redisEnv = start(redisSts, { name: redisName, podName: `${redisSts.metadata.name}-0`, aliases: [redisSvc] });
  await until("Redis to answer PING with its password", () => docker(["exec", redisName, "redis-cli", "ping"], { allowFail: true }).stdout.includes("PONG"));
  const noauth = docker(["exec", "-e", "REDISCLI_AUTH=", redisName, "redis-cli", "ping"], { allowFail: true });
  if (noauth.stdout.includes("PONG")) throw new Error("Redis answers without a password");
  const aof = docker(["exec", redisName, "redis-cli", "config", "get", "appendonly"]).stdout;
  if (!/appendonly\s+yes/.test(aof)) throw new Error(`Redis AOF is off: ${aof}`);
  if (!redisEnv.REDIS_PASSWORD) throw new Error("Redis got no password");
  say("redis: up, refuses unauthenticated clients, AOF on");

  // 2. two chat containers and the notifier
  const chatC = chatDeploy.spec.template.spec.containers[0];
  const chatPort = Number(resolveEnv(chatC, "x").PORT);
  const chatProbe = Number(resolveEnv(chatC, "x").PROBE_PORT);
  const chats = ["a", "b"].map((s) => ({ name: `${prefix}-chat-${s}`, pod: `${chatDeploy.metadata.name}-${s}` }));
  for (const c of chats) {
    const base = resolveEnv(chatC, c.pod);
    if (!base.REDIS_PASSWORD || /\/\/[^/]*@/.test(base.REDIS_URL)) throw new Error("chat must get REDIS_PASSWORD from the Secret and a REDIS_URL without it");
    c.env = start(chatDeploy, { name: c.name, podName: c.pod, aliases: [chatSvc, podsSvc], publish: [chatPort, chatProbe] });
  }
  const nC = notifierDeploy.spec.template.spec.containers[0];
  const nBase = resolveEnv(nC, "n");
  const notifierName = `${prefix}-notifier`;
  const nEnv = start(notifierDeploy, {
    name: notifierName,
    podName: `${notifierDeploy.metadata.name}-0`,
    aliases: [notifierSvc],
    publish: [Number(nBase.PORT), Number(nBase.PROBE_PORT)],
  });
  for (const c of chats) {
    await waitUp(c.name, chatPort);
    c.url = `http://127.0.0.1:${hostPort(c.name, chatPort)}`;
    const probe = `http://127.0.0.1:${hostPort(c.name, chatProbe)}/readyz`;
    await until(`${c.name} /readyz`, () => httpOk(probe));
  }
  await waitUp(notifierName, Number(nBase.PORT));
  const notifierUrl = `http://127.0.0.1:${hostPort(notifierName, Number(nBase.PORT))}`;
  const nProbe = `http://127.0.0.1:${hostPort(notifierName, Number(nBase.PROBE_PORT))}/readyz`;
  await until("notifier /readyz", () => httpOk(nProbe));
  say(`up and ready: ${chats.map((c) => `${c.name} (${c.url})`).join(", ")}, notifier (${notifierUrl})`);
  const page = await fetch(`${chats[0].url}/`);
  if (!page.ok || !/<html/i.test(await page.text())) throw new Error(`the web page is not served: ${page.status}`);
  if (chats[0].env.AUTH_MODE === "jwt") {
    const refused = await connect(chats[0].url, "mallory", { AUTH_MODE: "open" }).then(
      (s) => (s.close(), false),
      () => true,
    );
    if (!refused) throw new Error("AUTH_MODE=jwt, yet a client without a token was let in");
  }
  say(`web page served; auth ${chats[0].env.AUTH_MODE}${chats[0].env.AUTH_MODE === "jwt" ? ": a client without a token is refused" : ""}`);

  // 3. cross-container delivery and a notifier event
  const room = `topology.${run}`;
  const a = await connect(chats[0].url, "alice", chats[0].env);
  const b = await connect(chats[1].url, "bob", chats[1].env);
  const got = { a: [], b: [], na: [], nb: [] };
  a.on("message", (m) => got.a.push(m));
  b.on("message", (m) => got.b.push(m));
  a.on("notification", (n) => got.na.push(n));
  b.on("notification", (n) => got.nb.push(n));
  await ack(a, "join", { room });
  await ack(b, "join", { room });
  await ack(a, "message", { room, text: "hello from chat-a" });
  await ack(b, "message", { room, text: "hello from chat-b" });
  await until(
    "each client to get the other container's message",
    () => got.a.some((m) => m.text === "hello from chat-b") && got.b.some((m) => m.text === "hello from chat-a"),
    10_000,
  );
  say("chat-a ⇄ chat-b: each client got the other's message");

  const key = nEnv.NOTIFIER_API_KEYS.split(",")[0];
  const res = await fetch(`${notifierUrl}/v1/rooms/${room}/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ type: "topology.check", data: { run } }),
  });
  if (res.status !== 202) throw new Error(`notifier answered ${res.status}: ${await res.text()}`);
  await until(
    "both clients to get the notifier event",
    () => [got.na, got.nb].every((l) => l.some((n) => n.type === "topology.check" && n.data?.run === run)),
    10_000,
  );
  say("notifier: POST /v1/rooms/:room/events → 202, a notification reached the clients on both containers");

  // 4. the helm test script, inside the chat image, as the hook pod runs it
  const testPod = objects.find((o) => o.kind === "Pod" && o.metadata.annotations?.["helm.sh/hook"] === "test");
  const testEnv = resolveEnv(testPod.spec.containers[0], "test");
  // No kube-proxy here: the Service name resolves to the containers, on the container port.
  testEnv.CHAT_URL = `http://${chatSvc}:${chatPort}`;
  const t = testPod.spec.containers[0];
  const testRun = docker(
    [
      "run",
      "--rm",
      "--network",
      topology.net,
      "--user",
      `${t.securityContext.runAsUser}:${t.securityContext.runAsGroup}`,
      "--read-only",
      "--cap-drop",
      "ALL",
      "--security-opt",
      "no-new-privileges",
      ...topology.secretMounts(testPod.spec, t),
      ...Object.entries(testEnv).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      t.image,
      ...t.command,
    ],
    { allowFail: true },
  );
  process.stdout.write(testRun.stdout.replace(/^/gm, "  | "));
  if (testRun.status !== 0) throw new Error(`the helm test script failed in the chat image:\n${testRun.stderr}`);
  say("helm test script: PASS inside the chat image");

  // 5. docker stop: SIGTERM to Node as PID 1, drain, exit 0, even with a client that is connected
  // but busy: a process of its own that connects, joins, then blocks its event loop.
  const busy = await busyClient(chats[1].url, token("busy", chats[1].env), room);
  let bGone = false;
  b.on("disconnect", () => (bGone = true));
  const stopStart = Date.now();
  // Asynchronously: the clients in this process must keep answering (WebSocket close handshake)
  // while the container drains, as real clients do.
  await dockerAsync(["stop", "-t", String(grace), chats[1].name]);
  const took = (Date.now() - stopStart) / 1000;
  const code = docker(["inspect", "-f", "{{.State.ExitCode}}", chats[1].name]).stdout.trim();
  const bLogs = logsOf(chats[1].name);
  if (code !== "0") throw new Error(`chat-b exited ${code} after docker stop (${took}s):\n${bLogs.slice(-2000)}`);
  if (!/shutting down/.test(bLogs)) throw new Error("chat-b did not log that it was shutting down (no SIGTERM handled?)");
  // Docker runs no preStop hook: the pod's own budget is the readiness wait plus the drain window.
  // `took` includes the docker CLI's own round trips (a few tenths of a second).
  busy.kill("SIGKILL");
  const budget = Number(chats[1].env.SHUTDOWN_DELAY_SECONDS ?? 0) + Number(chats[1].env.DRAIN_SECONDS ?? 0) + 2;
  if (took > budget + 0.5)
    throw new Error(
      `chat-b took ${took.toFixed(1)}s to stop with a busy client connected, more than SHUTDOWN_DELAY_SECONDS + DRAIN_SECONDS + 2s (${budget}s):\n${bLogs.slice(-1500)}`,
    );
  await until("chat-b's client to be disconnected", () => bGone, 5000);
  await ack(a, "message", { room, text: "still here" });
  await until("chat-a to keep serving", () => got.a.some((m) => m.text === "still here"), 5000);
  say(`docker stop chat-b with a busy client connected: SIGTERM to PID 1, drained in ${took.toFixed(1)}s (budget ${budget}s), exit 0; chat-a still serves`);

  const nStart = Date.now();
  await dockerAsync(["stop", "-t", String(notifierDeploy.spec.template.spec.terminationGracePeriodSeconds), notifierName]);
  const nCode = docker(["inspect", "-f", "{{.State.ExitCode}}", notifierName]).stdout.trim();
  if (nCode !== "0") throw new Error(`notifier exited ${nCode} after docker stop:\n${logsOf(notifierName).slice(-2000)}`);
  say(`docker stop notifier: exit 0 in ${((Date.now() - nStart) / 1000).toFixed(1)}s`);
}

main().then(
  () => {
    say("PASS");
    cleanup();
    process.exit(0);
  },
  (err) => {
    console.error(`topology: FAIL: ${err.message}`);
    for (const c of created.containers) console.error(`--- last logs of ${c} ---\n${logsOf(c).slice(-1500)}`);
    cleanup();
    process.exit(1);
  },
);
