#!/usr/bin/env node
// Where a message's cost goes in the cost curve's small-rooms shape (1000 rooms of 2 by default):
// Redis commands and round trips per message, Redis and pod CPU per message, and optionally a CPU
// profile of the pods. Same processes as the bench (bench/procs.mjs: Redis + 3 pods, the load
// generator child), one kind at a time.
//
//   flock /tmp/bench.lock nice -n -19 node bench/experiments/small-rooms.mjs [--kind=chat|baseline|both]
//     [--rooms=1000] [--size=2] [--deliveries=1000] [--seconds=10] [--profile] [--monitor-ms=2000]
//     [--chat-env=K=V,K=V]
//
// Redis' own counters: `CONFIG RESETSTAT` before the measured run, `INFO commandstats` after it
// (calls and µs per command, the commands scripts run counted under their own names). Round trips
// are counted with `MONITOR` over --monitor-ms of a second run (MONITOR costs Redis CPU, so it is
// kept out of the measured one): a line from a script says `[0 lua]`, every other line is a
// command a client sent, i.e. one request (pipelined or not) of a round trip.
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chatEnv, cleanupAll, cpuOf, root, setup, sleep, startLoadgen } from "../procs.mjs";
import { printSummary, summarizeProfiles } from "../profile-summary.mjs";

const flag = (name, fallback) => {
  const arg = process.argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (!arg) return fallback;
  return arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : true;
};
const ROOMS = Number(flag("rooms", 1000));
const SIZE = Number(flag("size", 2));
const RATE = Number(flag("deliveries", 1000)) / SIZE;
const SECONDS = Number(flag("seconds", 10));
const MONITOR_MS = Number(flag("monitor-ms", 2000));
const KINDS = flag("kind", "both") === "both" ? ["chat", "baseline"] : [flag("kind")];
const PROFILE = flag("profile", false);
for (const kv of String(flag("chat-env", "")).split(",").filter(Boolean)) chatEnv[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);

const cli = (port, ...args) => execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" });

/** `INFO commandstats` as { command: { calls, usec } }. */
function commandStats(port) {
  const out = {};
  for (const line of cli(port, "INFO", "commandstats").split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

/** Commands clients sent and commands scripts ran while MONITOR listened for `ms`. */
async function monitor(port, ms) {
  const child = spawn("redis-cli", ["-p", String(port), "MONITOR"], { stdio: ["ignore", "pipe", "ignore"] });
  const counts = { client: {}, lua: {} };
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop();
    for (const line of lines) {
      const m = /^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
      if (!m) continue;
      const side = m[1] === "lua" ? "lua" : "client";
      const cmd = m[2].toLowerCase();
      counts[side][cmd] = (counts[side][cmd] ?? 0) + 1;
    }
  });
  await sleep(ms);
  child.kill("SIGKILL");
  return counts;
}

async function runKind(lg, kind) {
  const profileDir = PROFILE && kind === "chat" ? join(root, "bench/results", `small-rooms-profile-${Date.now()}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const env = await setup(kind, { profileDir });
  const group = `small-${kind}`;
  const rooms = { prefix: `small-${ROOMS}x${SIZE}-`, size: SIZE, count: ROOMS };
  try {
    const c = await lg.call("connectGroup", { group, urls: env.urls, count: ROOMS * SIZE, prefix: `${group}-` });
    if (c.connected < ROOMS * SIZE) throw new Error(`only ${c.connected} connected`);
    const j = await lg.call("joinGroup", { group, rooms, concurrency: 100 });
    if (j.failed) throw new Error(`${j.failed} joins failed`);
    await sleep(1000);
    await lg.call("fixedRate", { group, rooms, rate: Math.min(RATE, 100), durationMs: 1000, settleMs: 1000 }); // warm-up

    // The measured run: Redis' counters and every process's CPU around it.
    const port = env.redis.port;
    cli(port, "CONFIG", "RESETSTAT");
    const pids = env.pids();
    const before = cpuOf(pids);
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    const run = await lg.call("fixedRate", { group, rooms, rate: RATE, durationMs: SECONDS * 1000, settleMs: 2000 });
    const after = cpuOf(pids);
    const window = { fromUs, toUs: Number(process.hrtime.bigint() / 1000n) };
    const stats = commandStats(port);
    const cpu = Object.fromEntries(pids.map(({ name }) => [name, after[name] - before[name]]));
    const redisCpu = cpu.redis;
    const podsCpu = Object.entries(cpu)
      .filter(([k]) => k !== "redis")
      .reduce((a, [, v]) => a + v, 0);
    const msgs = run.acked || run.sent;
    const perMsg = (x) => +(x / msgs).toFixed(2);
    const rows = Object.entries(stats)
      .sort((a, b) => b[1].usec - a[1].usec)
      .map(([cmd, s]) => ({ cmd, callsPerMessage: perMsg(s.calls), usecPerMessage: perMsg(s.usec), usecPerCall: +(s.usec / s.calls).toFixed(2) }));
    const commandUsec = Object.values(stats).reduce((a, s) => a + s.usec, 0);

    // A second run with MONITOR on, for round trips (client-sent commands) per message.
    const mon = monitor(port, MONITOR_MS);
    const run2 = lg.call("fixedRate", { group, rooms, rate: RATE, durationMs: MONITOR_MS + 1000, settleMs: 1000 });
    const counts = await mon;
    await run2;
    const sentInWindow = (counts.client.publish ?? 0) + (counts.client.evalsha ?? 0) + (counts.client.eval ?? 0) > 0 ? (RATE * MONITOR_MS) / 1000 : 1;
    const per = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, +(v / sentInWindow).toFixed(2)]));

    return {
      kind,
      shape: `${ROOMS}×${SIZE} @ ${RATE} msg/s for ${SECONDS} s`,
      acked: run.acked,
      sent: run.sent,
      delivered: run.delivered,
      p99: run.latency.p99,
      ackP99: run.ack?.p99,
      cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +v.toFixed(2)])),
      podsCpuUsPerMessage: +((1e6 * podsCpu) / msgs).toFixed(1),
      redisCpuUsPerMessage: +((1e6 * redisCpu) / msgs).toFixed(1),
      podsCpuUsPerDelivery: +((1e6 * podsCpu) / run.delivered).toFixed(1),
      redisCommandUsecPerMessage: perMsg(commandUsec),
      commands: rows,
      monitorPerMessage: { clientSent: per(counts.client), inScripts: per(counts.lua) },
      profileDir,
      window,
    };
  } finally {
    await lg.call("closeGroup", { group }).catch(() => undefined);
    if (profileDir) await Promise.all(env.servers.map((s) => s.stop("SIGTERM")));
    await env.teardown();
  }
}

const lg = await startLoadgen();
try {
  for (const kind of KINDS) {
    const r = await runKind(lg, kind);
    console.log(JSON.stringify({ ...r, commands: undefined }, null, 1));
    console.table(r.commands);
    if (r.profileDir) {
      await sleep(1000);
      printSummary(summarizeProfiles(r.profileDir, 30, r.window));
    }
  }
} finally {
  lg.stop();
  await cleanupAll();
}
