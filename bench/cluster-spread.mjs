// The bus on a real 3-master Redis Cluster (3 replicas), as a deployment runs it. By default
// through the real services (`runClusterSpread`, `npm run bench -- --only=cluster`): 2 chat pods and
// the notifier on the cluster in sharded mode, many rooms with members on both pods, chat messages
// and notifier room events in every room at once; it prints how the load spreads over the masters
// (INFO commandstats of each: script calls, XADD, SPUBLISH, every command) and that everything
// was delivered. `--direct` measures the room log alone through the services' cluster client
// (createRedisClusterClient), and what a cluster costs a rate-limited append: the limit's keys are
// in another slot than the room's, so on a cluster it is counted in a round trip of its own before
// the script (one round trip otherwise). Needs a build (`npm run build`) and redis-server /
// redis-cli on PATH.
//
//   node bench/cluster-spread.mjs [--quick] [--direct [--rooms=60] [--messages=6000]]
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { createLogger, createRateLimit, createRedisClusterClient, createRedisRoomLog } from "@chat/shared";
import { closeAllClients, connectClient, startRedis, startRedisCluster, startService, stopAllServices, waitFor } from "@chat/testkit";

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const log = createLogger({ service: "bench", pod: "bench", level: "silent" });

/** Median milliseconds of `n` sequential appends to one room, rate-limited or not. */
async function appendMs(redis, { limited, n = 300 }) {
  const roomLog = createRedisRoomLog(redis, { busMode: "sharded" });
  const limiter = createRateLimit(redis, { keyPrefix: "bench:rl", points: 1_000_000, durationSeconds: 60 });
  const times = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    if (limited) await roomLog.appendLimited("latency", "message", { text: `t${i}` }, { limiter, key: "bench-user" });
    else await roomLog.append("latency", "message", { text: `t${i}` });
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)].toFixed(2);
}

function commandstats(info) {
  const calls = {};
  for (const [, name, n] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[name] = Number(n);
  return calls;
}

/** Runs `f` with a plain client on each master, in order. */
async function onMasters(masters, f) {
  const out = [];
  for (const master of masters) {
    const client = new Redis(master.url, { maxRetriesPerRequest: 1 });
    try {
      out.push(await f(client, master));
    } finally {
      client.disconnect();
    }
  }
  return out;
}

const ROOMS = 60;
const MEMBERS = 4;
const API_KEY = "bench-cluster-key-0123456789abcdef";

/**
 * The many-rooms run through the services on a 3-master, 3-replica cluster: `rooms` rooms of 4
 * members (2 on each of 2 chat pods), `messages` chat messages and `events` notifier room events
 * (HTTP) per room, every room at once. Returns one row per master (its commands from INFO
 * commandstats, reset after the joins) and the deliveries.
 */
export async function runClusterSpread({ quick = false } = {}) {
  const rooms = quick ? 30 : ROOMS;
  const messages = quick ? 10 : 30;
  const events = quick ? 5 : 15;
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  try {
    const env = {
      ...cluster.env,
      BUS_MODE: "sharded",
      // startService waits for the "is up" line, logged at info.
      LOG_LEVEL: "info",
      RATE_LIMIT_MESSAGES_PER_SECOND: "0",
      RATE_LIMIT_EVENTS_PER_SECOND: "0",
      QUOTA_USER_BYTES: "0",
      QUOTA_ROOM_BYTES: "0",
      QUOTA_TOTAL_BYTES: "0",
    };
    const [pods, notifier] = await Promise.all([
      Promise.all([0, 1].map((i) => startService("chat", { pod: `cluster-chat-${i}`, env }))),
      startService("notifier", {
        pod: "cluster-notifier",
        env: { ...cluster.env, BUS_MODE: "sharded", LOG_LEVEL: "info", NOTIFIER_API_KEYS: API_KEY, RATE_LIMIT_NOTIFIER_PER_SECOND: "0" },
      }),
    ]);
    let delivered = 0;
    const members = [];
    for (let room = 0; room < rooms; room++) {
      const joined = await Promise.all(
        Array.from({ length: MEMBERS }, async (_, m) => {
          const socket = await connectClient(pods[m % 2].url, `c${room}-m${m}`);
          socket.on("message", () => delivered++);
          socket.on("notification", () => delivered++);
          const ack = await socket.emitWithAck("join", { room: `room-${room}` });
          if (!ack.ok) throw new Error(`join: ${ack.error.message}`);
          return socket;
        }),
      );
      members.push(joined);
    }
    const masters = await cluster.masters();
    await onMasters(masters, (client) => client.call("CONFIG", "RESETSTAT"));
    const started = performance.now();
    await Promise.all(
      members.map(async (sockets, room) => {
        for (let i = 0; i < messages; i++) {
          const ack = await sockets[i % MEMBERS].emitWithAck("message", { room: `room-${room}`, text: `message ${i}` });
          if (!ack.ok) throw new Error(`message: ${ack.error.message}`);
          if (i < events) {
            const res = await fetch(`${notifier.url}/v1/rooms/room-${room}/events`, {
              method: "POST",
              headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
              body: JSON.stringify({ type: "bench", data: { i } }),
            });
            if (res.status !== 202) throw new Error(`notifier: HTTP ${res.status} ${await res.text()}`);
          }
        }
      }),
    );
    const expected = rooms * (messages + events) * MEMBERS;
    await waitFor(() => delivered >= expected, { timeoutMs: 120_000, what: () => `${expected} deliveries (got ${delivered})` });
    const seconds = (performance.now() - started) / 1000;
    const appends = rooms * (messages + events);
    const rows = await onMasters(masters, async (client, master) => {
      const calls = commandstats(await client.info("commandstats"));
      const total = Object.values(calls).reduce((a, b) => a + b, 0);
      return {
        master: `:${master.port}`,
        scriptCalls: (calls.evalsha ?? 0) + (calls.eval ?? 0),
        xadd: calls.xadd ?? 0,
        spublish: calls.spublish ?? 0,
        commands: total,
        sharePercent: Math.round((100 * (calls.xadd ?? 0)) / appends),
      };
    });
    const notes =
      `${rooms} rooms of ${MEMBERS} members (2 on each of 2 chat pods), ${messages} chat messages and ${events} notifier room events (HTTP) per room, ` +
      `every room at once, on a 3-master, 3-replica Redis Cluster in sharded mode. Per master: its INFO commandstats from after the joins ` +
      `to the last delivery (script calls are the room log's append script; every command counts the commands those scripts run too, ` +
      `and the pods' presence heartbeats and the notifier's stream polls). Each room's keys and channel live on its slot's master, so the bus load spreads by slot.`;
    return { rows, delivered, expected, appends, seconds: Math.round(seconds * 100) / 100, notes };
  } finally {
    closeAllClients();
    await stopAllServices();
    await cluster.dispose();
  }
}

/** The room log alone, through the services' cluster client: the spread of `messages` appends, and what a rate limit costs. */
async function direct() {
  const ROOMS = arg("rooms", 60);
  const MESSAGES = arg("messages", 6000);
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  const standalone = await startRedis();
  try {
    const redis = createRedisClusterClient({ kind: "cluster", nodes: cluster.startupNodes.slice(0, 1) }, {}, { role: "bench", log });
    await waitFor(() => redis.status === "ready", { timeoutMs: 20_000, what: "the cluster client" });
    const masters = await cluster.masters();
    for (const master of masters) {
      const client = new Redis(master.url);
      await client.call("CONFIG", "RESETSTAT");
      client.disconnect();
    }

    const roomLog = createRedisRoomLog(redis, { busMode: "sharded" });
    const started = performance.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: ROOMS }, async (_, room) => {
        while (sent < MESSAGES) {
          sent++;
          await roomLog.append(`room-${room}`, "message", { text: "hello" });
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`${MESSAGES} appends to ${ROOMS} rooms on a 3-master cluster: ${Math.round(MESSAGES / seconds)} appends/s from one client`);
    console.log("master    | script calls | XADD  | SPUBLISH | share of appends");
    for (const master of masters) {
      const client = new Redis(master.url);
      const calls = commandstats(await client.info("commandstats"));
      client.disconnect();
      const scripts = (calls.evalsha ?? 0) + (calls.eval ?? 0);
      console.log(
        `:${master.port} | ${String(scripts).padStart(12)} | ${String(calls.xadd ?? 0).padStart(5)} | ${String(calls.spublish ?? 0).padStart(8)} | ${((100 * (calls.xadd ?? 0)) / MESSAGES).toFixed(0)} %`,
      );
    }

    const single = new Redis(standalone.url);
    const median = async (client) => `${await appendMs(client, { limited: false })} ms plain, ${await appendMs(client, { limited: true })} ms rate-limited`;
    console.log(`append, median of 300 sequential: one server ${await median(single)} (1 round trip each)`);
    console.log(`                                  the cluster ${await median(redis)} (the limit is a round trip of its own)`);
    single.disconnect();
    redis.disconnect();
  } finally {
    await cluster.dispose();
    await standalone.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--direct")) await direct();
  else {
    const r = await runClusterSpread({ quick: process.argv.includes("--quick") });
    console.table(r.rows);
    console.log(`delivered ${r.delivered}/${r.expected} (${r.appends} appends) in ${r.seconds} s`);
    console.log(r.notes);
  }
  process.exit(0);
}
