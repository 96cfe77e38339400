// Issue 22's connections per pod, run by bench.mjs (`--only=conns`): `count` idle connections on one
// pod (the chat with AUTH_MODE=jwt; the baseline has no auth), then 5% of them in active rooms of
// 50 with 2 msg/s each. Reports RSS per connection and the event-loop delay, idle and active: the
// chat's from prom-client's nodejs_eventloop_lag_* on /metrics (reset at every scrape), the
// baseline's from the same monitorEventLoopDelay behind its BENCH_ELD=1 hook (GET /bench/eld).
//
// The clients come from 4 source addresses (127.0.0.1-4), each with its own ephemeral ports. Every
// process gets a raised file-descriptor limit where prlimit may (procs.mjs); where it may not (no
// CAP_SYS_RESOURCE: `ulimit -Hn` is the ceiling), the pod and the load generator each need one
// descriptor per connection, so the count is capped a little under the hard limit, and said so.
import { readFileSync } from "node:fs";
import { rssKiB, setup, sleep } from "./procs.mjs";
import { STORM_JWT_SECRET } from "./storm.mjs";

const SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
const ROOM_SIZE = 50;
const RATE_PER_ROOM = 2;

/** The event-loop delay since the last call (ms): mean, p50, p99, max. */
async function eventLoopDelay(env) {
  const server = env.servers[0];
  if (env.kind === "chat") {
    const text = await (await fetch(`${server.svc.probeUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const get = (name) => {
      const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line ? +(1000 * Number(line.slice(line.lastIndexOf(" ") + 1))).toFixed(2) : null;
    };
    return {
      mean: get("nodejs_eventloop_lag_mean_seconds"),
      p50: get("nodejs_eventloop_lag_p50_seconds"),
      p99: get("nodejs_eventloop_lag_p99_seconds"),
      max: get("nodejs_eventloop_lag_max_seconds"),
    };
  }
  return (await fetch(`${server.url}/bench/eld`, { signal: AbortSignal.timeout(10_000) })).json();
}

/** This process's hard limit on open files (the most prlimit can give the pod without privileges). */
function hardFdLimit() {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const hard = line?.trim().split(/\s+/)[4];
  return hard === "unlimited" || !hard ? Infinity : Number(hard);
}

async function connsRun({ lg, say, quick, kind }) {
  const target = quick ? 3000 : 20_000;
  const count = Math.min(target, hardFdLimit() - 300);
  if (count < target) say(`conns: ${count} connections, not ${target}: the open-files limit is ${hardFdLimit()} for the pod and the load generator`);
  const env = await setup(kind, { pods: 1, env: kind === "chat" ? { AUTH_MODE: "jwt", JWT_SECRET: STORM_JWT_SECRET } : { BENCH_ELD: "1" } });
  const group = `conns-${kind}`;
  try {
    const pid = env.servers[0].pid;
    await sleep(1000);
    const rssBefore = rssKiB(pid);
    await eventLoopDelay(env);
    const c = await lg.call("connectGroup", {
      group,
      urls: env.urls,
      count,
      prefix: `${kind}-conn-`,
      jwtSecret: kind === "chat" ? STORM_JWT_SECRET : undefined,
      localAddresses: SOURCES,
    });
    say(`conns ${kind}: ${c.connected}/${count} connected in ${c.ms} ms${c.failures.length ? ` (failures: ${c.failures.join("; ")})` : ""}`);
    await eventLoopDelay(env); // from here on: idle
    await sleep(quick ? 2000 : 5000);
    const idleEld = await eventLoopDelay(env);
    const rssIdle = rssKiB(pid);
    const active = Math.floor((count * 0.05) / ROOM_SIZE) * ROOM_SIZE;
    const rooms = { prefix: `conns-${kind}-`, size: ROOM_SIZE, count: active / ROOM_SIZE };
    const j = await lg.call("joinGroup", { group, rooms, concurrency: 100 });
    await sleep(1000);
    await eventLoopDelay(env);
    const run = await lg.call("fixedRate", { group, rooms, rate: RATE_PER_ROOM * rooms.count, durationMs: quick ? 3000 : 8000, settleMs: 2000 });
    const activeEld = await eventLoopDelay(env);
    const rssActive = rssKiB(pid);
    const r = {
      kind,
      auth: kind === "chat" ? "jwt" : "none",
      target,
      connections: c.connected,
      connectMs: c.ms,
      rssBeforeKiB: rssBefore,
      rssIdleKiB: rssIdle,
      rssActiveKiB: rssActive,
      kibPerConnectionIdle: +((rssIdle - rssBefore) / Math.max(1, c.connected)).toFixed(2),
      kibPerConnectionActive: +((rssActive - rssBefore) / Math.max(1, c.connected)).toFixed(2),
      idleEventLoopDelayMs: idleEld,
      active: {
        members: j.joined,
        rooms: rooms.count,
        rate: run.rate,
        deliveryRatio: run.deliveryRatio,
        latency: run.latency,
        acked: run.acked,
        sent: run.sent,
      },
      activeEventLoopDelayMs: activeEld,
    };
    say(
      `  ${kind}: RSS ${rssBefore} → ${rssIdle} KiB idle (${r.kibPerConnectionIdle} KiB/connection), ${rssActive} KiB active; event-loop delay p99 idle ${idleEld.p99} ms,` +
        ` with ${j.joined} in ${rooms.count} rooms at ${run.rate} msg/s ${activeEld.p99} ms (message p99 ${run.latency.p99} ms, delivered ${(100 * run.deliveryRatio).toFixed(2)}%)`,
    );
    return r;
  } finally {
    await lg.call("closeGroup", { group }).catch(() => undefined);
    await env.teardown();
  }
}

export async function connsScenario(ctx) {
  const out = {};
  for (const kind of ["chat", "baseline"]) {
    try {
      out[kind] = await connsRun({ ...ctx, kind });
    } catch (err) {
      ctx.say(`conns ${kind}: failed: ${err.stack ?? err}`);
      out[kind] = { error: String(err.message ?? err) };
    }
  }
  return out;
}
