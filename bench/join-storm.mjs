// What a storm of handshakes and joins into one big room costs one chat pod (issue 22).
//
//   flock /tmp/bench.lock node bench/join-storm.mjs [--clients=1000] [--auth=open|jwt] [--profile=DIR] [--env=K=V,...]
//
// One Redis, one chat process, N official socket.io-clients in this process. Three phases, each
// measured as the chat process's CPU (from /proc) and what the clients received:
//   1. handshakes: N clients connect, 50 at a time  -> µs of server CPU per handshake;
//   2. joins: every client joins the room "big", 50 at a time -> CPU-s, presence events and
//      member entries received (what grows as N² when every join is announced to every member);
//   3. leaves: every client disconnects -> CPU-s.
// `--profile=DIR` runs the chat with `node --cpu-prof` (written to DIR when it exits);
// `--handshakes-only` stops after phase 1 (to profile handshakes alone).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { SignJWT } from "jose";
import { io } from "socket.io-client";
import { startRedis, waitFor } from "@chat/testkit";
import { cpuSeconds, root, sleep } from "./procs.mjs";

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")));
const N = Number(args.clients ?? 1000);
const AUTH = args.auth ?? "open";
const SECRET = "join-storm-secret-of-at-least-32-bytes!";
const BATCH = 50;
const extraEnv = Object.fromEntries(
  (args.env ?? "")
    .split(",")
    .filter(Boolean)
    .map((kv) => kv.split("=")),
);

async function startChat(redisUrl) {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: "0",
    PROBE_PORT: "0",
    LOG_LEVEL: "info",
    POD_NAME: "chat-0",
    REDIS_URL: redisUrl,
    AUTH_MODE: AUTH,
    ...(AUTH === "jwt" && { JWT_SECRET: SECRET }),
    RATE_LIMIT_CONNECTIONS_PER_IP: "0",
    MAX_OPEN_PER_ADDRESS: "0",
    RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: "0",
    ...extraEnv,
  };
  const execArgv = args.profile ? ["--cpu-prof", `--cpu-prof-dir=${args.profile}`] : [];
  const child = spawn(process.execPath, [...execArgv, "services/chat/dist/main.js"], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  let buf = "";
  const up = await new Promise((resolve, reject) => {
    const onData = (d) => {
      buf += d;
      const line = buf.split("\n").find((l) => / is up at /.test(l));
      if (!line) return;
      child.stdout.off("data", onData);
      child.stdout.resume();
      resolve(JSON.parse(line));
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`chat exited ${code}`)));
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${up.probePort}/readyz`).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 15_000 });
  return { child, url: `http://127.0.0.1:${up.port}` };
}

async function auth(i) {
  if (AUTH === "open") return { name: `user-${i}` };
  const token = await new SignJWT({ name: `user-${i}` })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(`user-${i}`)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(SECRET));
  return { token };
}

function connect(url, i, credentials) {
  const socket = io(url, { auth: credentials, transports: ["websocket"], reconnection: false, forceNew: true, timeout: 60_000 });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

async function inBatches(count, fn) {
  const out = [];
  for (let start = 0; start < count; start += BATCH) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, count - start) }, (_, k) => fn(start + k)))));
  }
  return out;
}

const redis = await startRedis();
const chat = await startChat(redis.url);
const pid = chat.child.pid;
const credentials = await Promise.all(Array.from({ length: N }, (_, i) => auth(i)));
await sleep(500);

let cpu = cpuSeconds(pid);
let t = performance.now();
const lap = () => {
  const now = cpuSeconds(pid);
  const wall = performance.now();
  const result = { cpu: now - cpu, wall: (wall - t) / 1000 };
  cpu = now;
  t = wall;
  return result;
};

const sockets = await inBatches(N, (i) => connect(chat.url, i, credentials[i]));
const handshakes = lap();
if ("handshakes-only" in args) {
  console.log(
    JSON.stringify({ clients: N, auth: AUTH, env: extraEnv, handshakes: { cpuS: handshakes.cpu, usPerHandshake: Math.round((handshakes.cpu / N) * 1e6) } }),
  );
  for (const socket of sockets) socket.close();
  chat.child.kill("SIGTERM");
  await once(chat.child, "exit");
  await redis.dispose();
  process.exit(0);
}

let presenceEvents = 0;
let presenceBytes = 0;
let memberEntries = 0;
let ackBytes = 0;
for (const socket of sockets) {
  socket.on("presence", (event) => {
    presenceEvents++;
    presenceBytes += JSON.stringify(event).length;
  });
}
await inBatches(N, async (i) => {
  const ack = await sockets[i].emitWithAck("join", { room: "big" });
  if (!ack.ok) throw new Error(`join ${i}: ${JSON.stringify(ack.error)}`);
  memberEntries += ack.members.length;
  ackBytes += JSON.stringify(ack).length;
});
// Wait until the announcements stop arriving (coalesced ones come a little later).
let last = -1;
while (last !== presenceEvents) {
  last = presenceEvents;
  await sleep(500);
}
const joins = lap();

for (const socket of sockets) socket.close();
await sleep(2000);
const leaves = lap();
joins.wall -= 0.5;

const round = (x, d = 2) => Number(x.toFixed(d));
const report = {
  clients: N,
  auth: AUTH,
  env: extraEnv,
  handshakes: { cpuS: round(handshakes.cpu), usPerHandshake: Math.round((handshakes.cpu / N) * 1e6), wallS: round(handshakes.wall) },
  joins: {
    cpuS: round(joins.cpu),
    wallS: round(joins.wall),
    presenceEvents,
    presenceKiB: Math.round(presenceBytes / 1024),
    memberEntries,
    ackKiB: Math.round(ackBytes / 1024),
  },
  leaves: { cpuS: round(leaves.cpu) },
};
console.log(JSON.stringify(report));
chat.child.kill("SIGTERM");
await once(chat.child, "exit");
await redis.dispose();
process.exit(0);
