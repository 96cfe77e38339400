// Idle cost per pod: 1000 connections joined to one room, nothing sent, for 30 s; CPU-s and
// context switches of each server process, chat vs baseline. Usage: node bench/experiments/idle-wakeups.mjs
import { readFileSync } from "node:fs";
import { cpuSeconds, serverEnv, setup, sleep, startLoadgen, cleanupAll } from "../procs.mjs";
const ctxt = (pid) => {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(s)[1]) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)[1]);
};
if (process.env.SERVER_NODE_OPTIONS) serverEnv.NODE_OPTIONS = process.env.SERVER_NODE_OPTIONS;
const lg = await startLoadgen();
try {
  for (const kind of (process.argv[2] ?? "chat,baseline").split(",")) {
    const env = await setup(kind);
    await lg.call("connectGroup", { group: kind, urls: env.urls, count: 1000, prefix: `idle-${kind}-` });
    await lg.call("joinGroup", { group: kind, room: "idle-room" });
    await sleep(3000);
    const pids = env.servers.map((s) => s.pid);
    const c0 = pids.map(cpuSeconds);
    const x0 = pids.map(ctxt);
    await sleep(30_000);
    const cpu = pids.map((p, i) => +(cpuSeconds(p) - c0[i]).toFixed(3));
    const sw = pids.map((p, i) => Math.round((ctxt(p) - x0[i]) / 30));
    console.log(kind, "CPU-s in 30 s per process", cpu, "context switches/s", sw);
    await lg.call("closeGroup", { group: kind });
    await env.teardown();
  }
} finally {
  lg.child?.kill?.();
  await cleanupAll();
  process.exit(0);
}
