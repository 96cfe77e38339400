// Issue 22's cost curve and raw floor, run by bench.mjs (`--only=curve`, `--only=floor`).
//
// Cost curve: the same deliveries per second over 1 room of 1000, 10 of 100, 100 of 10 and 1000
// rooms of 2, for the chat and the baseline (both stacks up together, their runs alternated per
// shape): server CPU µs per delivery (pods and Redis apart) and latency.
//
// Floor: the raw reference (bench/floor-server.mjs), the chat and the baseline, all three up
// together, each with 1000 members in one room, at 30 and 60 msg/s: deliveries per server CPU-s.
import { cpuOf, setup, sleep } from "./procs.mjs";

/** [rooms, members per room]: the same members in total, except the 1000 rooms of 2 (2000). */
export const CURVE_SHAPES = [
  [1, 1000],
  [10, 100],
  [100, 10],
  [1000, 2],
];
const FLOOR_KINDS = ["floor", "chat", "baseline"];
const podsOf = (run) =>
  Object.entries(run.cpuPerProcess)
    .filter(([k]) => k !== "redis")
    .reduce((a, [, v]) => a + v, 0);

/**
 * Each process's CPU-s per second with every client connected and nothing sent (heartbeats, timers):
 * subtracted from the runs, since at 1 msg/s it would otherwise be most of what is measured.
 */
async function idleRates(env, ms) {
  const pids = env.pids();
  const a = cpuOf(pids);
  await sleep(ms);
  const b = cpuOf(pids);
  return Object.fromEntries(pids.map(({ name }) => [name, +((b[name] - a[name]) / (ms / 1000)).toFixed(4)]));
}

/** One side's figures from a measured run, net of the idle CPU over its wall time. */
function curveRow(run, idle) {
  const us = (cpu, per) => (per > 0 ? +((1e6 * cpu) / per).toFixed(2) : null);
  const net = Object.fromEntries(Object.entries(run.cpuPerProcess).map(([k, v]) => [k, Math.max(0, v - (idle[k] ?? 0) * (run.wallMs / 1000))]));
  const redis = net.redis ?? 0;
  const pods = Object.entries(net)
    .filter(([k]) => k !== "redis")
    .reduce((a, [, v]) => a + v, 0);
  return {
    cpuUsPerDelivery: us(pods + redis, run.delivered),
    podsCpuUsPerDelivery: us(pods, run.delivered),
    redisCpuUsPerDelivery: us(redis, run.delivered),
    redisCpuUsPerMessage: us(redis, run.acked),
    grossCpuUsPerDelivery: us(run.serverCpuSeconds, run.delivered),
    podsCpuSeconds: +podsOf(run).toFixed(3),
    redisCpuSeconds: +(run.cpuPerProcess.redis ?? 0).toFixed(3),
    wallMs: run.wallMs,
    p50: run.latency.p50,
    p99: run.latency.p99,
    deliveryRatio: run.deliveryRatio,
    acked: run.acked,
    sent: run.sent,
    ackErrors: run.ackErrors,
    pass: run.pass,
    otherCpuSeconds: run.otherCpuSeconds,
  };
}

async function connect(lg, env, group, count, say) {
  const c = await lg.call("connectGroup", { group, urls: env.urls, count, prefix: `${group}-` });
  say(`  ${env.kind}: ${c.connected}/${count} connected in ${c.ms} ms`);
  if (c.connected < count) throw new Error(`${group}: only ${c.connected} of ${count} connected: ${JSON.stringify(c.failures)}`);
}

/**
 * `deliveriesPerSecond` over each shape: rate = deliveriesPerSecond ÷ room size msg/s, message n
 * into room n mod rooms, sent by the room's members in turn (each well under the 10 msg/s limit).
 */
export async function costCurve({ lg, say, measured, quick, deliveriesPerSecond = 1000 }) {
  const durationMs = quick ? 3000 : 10_000;
  const kinds = ["chat", "baseline"];
  const clients = Math.max(...CURVE_SHAPES.map(([n, size]) => n * size));
  say(`curve: ${deliveriesPerSecond} deliveries/s over ${CURVE_SHAPES.map(([n, s]) => `${n}×${s}`).join(", ")}; chat and baseline up together`);
  const envs = {};
  const out = { deliveriesPerSecond, durationMs, shapes: [] };
  try {
    for (const kind of kinds) {
      envs[kind] = await setup(kind);
      await connect(lg, envs[kind], `curve-${kind}`, clients, say);
    }
    out.idleCpuPerSecond = {};
    for (const kind of kinds) out.idleCpuPerSecond[kind] = await idleRates(envs[kind], quick ? 2000 : 4000);
    say(`  idle CPU-s per second: ${JSON.stringify(out.idleCpuPerSecond)}`);
    for (const [index, [count, size]] of CURVE_SHAPES.entries()) {
      const rate = deliveriesPerSecond / size;
      const shape = { rooms: count, size, rate };
      const order = index % 2 ? [...kinds].reverse() : kinds;
      for (const kind of order) {
        const rooms = { prefix: `curve-${count}x${size}-`, size, count };
        const j = await lg.call("joinGroup", { group: `curve-${kind}`, rooms, concurrency: 100 });
        if (j.failed) throw new Error(`curve ${kind} ${count}×${size}: ${j.failed} joins failed`);
      }
      await sleep(1000); // the joins' presence fan-out settles
      for (const kind of order) {
        const group = `curve-${kind}`;
        const rooms = { prefix: `curve-${count}x${size}-`, size, count };
        await lg.call("fixedRate", { group, rooms, rate: Math.min(rate, 100), durationMs: 500, settleMs: 1000 }); // warm-up
        const run = await measured(lg, envs[kind], { group, rooms, rate, durationMs, settleMs: 2000 });
        shape[kind] = curveRow(run, out.idleCpuPerSecond[kind]);
        say(
          `  ${kind.padEnd(8)} ${count}×${size} @ ${rate} msg/s: ${shape[kind].cpuUsPerDelivery} µs CPU/delivery (pods ${shape[kind].podsCpuUsPerDelivery}, Redis ${shape[kind].redisCpuUsPerDelivery});` +
            ` Redis ${shape[kind].redisCpuUsPerMessage} µs/message; p99 ${run.latency.p99} ms; delivered ${(100 * run.deliveryRatio).toFixed(2)}%, acked ${run.acked}/${run.sent}${run.pass ? "" : "  FAIL"}`,
        );
      }
      out.shapes.push(shape);
    }
  } finally {
    for (const kind of kinds) await lg.call("closeGroup", { group: `curve-${kind}` }).catch(() => undefined);
    for (const env of Object.values(envs)) await env.teardown();
  }
  return out;
}

/** The efficiency of the floor, the chat and the baseline at each of `rates` × 1000 members. */
export async function floorScenario({ lg, say, measured, cfg, rates = [30, 60] }) {
  const rounds = 1; // each run is already alternated with the others' on the same machine; a second round costs 1.5 min
  const durationMs = cfg.fixedMs;
  say(`floor: ${FLOOR_KINDS.join(", ")} up together, ${rounds} alternated round(s) at ${rates.join(" and ")} msg/s × ${cfg.members}`);
  const envs = {};
  const runs = Object.fromEntries(rates.map((rate) => [rate, Object.fromEntries(FLOOR_KINDS.map((k) => [k, []]))]));
  try {
    for (const kind of FLOOR_KINDS) {
      envs[kind] = await setup(kind);
      const group = `floor-${kind}`;
      await connect(lg, envs[kind], group, cfg.members, say);
      const j = await lg.call("joinGroup", { group, room: "bench-room" });
      if (j.failed) throw new Error(`floor ${kind}: ${j.failed} joins failed`);
      await sleep(1000);
      await lg.call("fixedRate", { group, room: "bench-room", rate: 10, durationMs: 1000, settleMs: 1000, senders: 50 }); // warm-up
    }
    for (let round = 0; round < rounds; round++) {
      for (const rate of rates) {
        const order = (round + rates.indexOf(rate)) % 2 ? [...FLOOR_KINDS].reverse() : FLOOR_KINDS;
        for (const kind of order) {
          const run = await measured(lg, envs[kind], { group: `floor-${kind}`, room: "bench-room", rate, durationMs, settleMs: cfg.settleMs });
          runs[rate][kind].push(run);
          say(
            `  ${kind.padEnd(8)} ${rate} msg/s: ${run.deliveriesPerCpuSecond} deliveries/CPU-s, p99 ${run.latency.p99} ms, delivered ${(100 * run.deliveryRatio).toFixed(2)}%${run.pass ? "" : "  FAIL"}`,
          );
        }
      }
    }
  } finally {
    for (const kind of FLOOR_KINDS) await lg.call("closeGroup", { group: `floor-${kind}` }).catch(() => undefined);
    for (const env of Object.values(envs)) await env.teardown();
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  return {
    members: cfg.members,
    durationMs,
    rounds,
    rates: rates.map((rate) => {
      const row = { rate };
      for (const kind of FLOOR_KINDS) {
        const all = runs[rate][kind];
        row[kind] = {
          deliveriesPerCpuSecond: median(all.map((r) => r.deliveriesPerCpuSecond ?? 0)),
          p99: median(all.map((r) => r.latency.p99 ?? Infinity)),
          podsCpuSeconds: median(all.map(podsOf)),
          redisCpuSeconds: median(all.map((r) => r.cpuPerProcess.redis ?? 0)),
          pass: all.every((r) => r.pass),
          runs: all.map((r) => ({
            deliveriesPerCpuSecond: r.deliveriesPerCpuSecond,
            p99: r.latency.p99,
            deliveryRatio: r.deliveryRatio,
            otherCpuSeconds: r.otherCpuSeconds,
          })),
        };
      }
      row.chatOfFloor = row.floor.deliveriesPerCpuSecond ? +(row.chat.deliveriesPerCpuSecond / row.floor.deliveriesPerCpuSecond).toFixed(3) : null;
      row.chatOfBaseline = row.baseline.deliveriesPerCpuSecond ? +(row.chat.deliveriesPerCpuSecond / row.baseline.deliveriesPerCpuSecond).toFixed(3) : null;
      row.floorOfBaseline = row.baseline.deliveriesPerCpuSecond ? +(row.floor.deliveriesPerCpuSecond / row.baseline.deliveriesPerCpuSecond).toFixed(3) : null;
      return row;
    }),
  };
}
