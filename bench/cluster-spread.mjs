// The bus layer on a real 3-master Redis Cluster (3 replicas), as the chat uses it: each message
// is the room log's append script (XADD + SPUBLISH on the room's channel, in the room's slot),
// sent through the services' cluster client (createRedisClusterClient). Prints how the load spreads
// over the masters (INFO commandstats of each: script calls, XADD, SPUBLISH), and what a cluster
// costs a rate-limited append: the limit's keys are in another slot than the room's, so on a
// cluster it is counted in a round trip of its own before the script (one round trip otherwise).
// Needs a build (`npm run build`) and redis-server / redis-cli on PATH.
//
//   node bench/cluster-spread.mjs [--rooms=60] [--messages=6000]
import { Redis } from "ioredis";
import { createLogger, createRateLimit, createRedisClusterClient, createRedisRoomLog } from "@chat/shared";
import { startRedis, startRedisCluster, waitFor } from "@chat/testkit";

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const ROOMS = arg("rooms", 60);
const MESSAGES = arg("messages", 6000);
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
