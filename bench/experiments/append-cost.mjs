#!/usr/bin/env node
// Redis CPU per append of the room log's script, alone on a private redis-server (no pods, no
// subscribers): N appends over `--rooms` rooms, pipelined `--inflight` at a time, with the rate
// limit and the three storage quotas as the chat counts them. Reports the redis-server process's
// CPU µs per append and INFO commandstats' µs per command, to split the script's own (Lua) cost
// from the commands it runs.
//   node bench/experiments/append-cost.mjs [--n=20000] [--rooms=1000] [--inflight=16] [--plain]
import { Redis } from "ioredis";
import { execFileSync } from "node:child_process";
import { startRedis } from "@chat/testkit";
import { createRateLimit, createRedisRoomLog, createStorageQuota } from "@chat/shared";
import { cpuSeconds } from "../procs.mjs";

const flag = (name, fallback) => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}`));
  return arg ? (arg.includes("=") ? arg.split("=")[1] : true) : fallback;
};
const N = Number(flag("n", 20000));
const ROOMS = Number(flag("rooms", 1000));
const INFLIGHT = Number(flag("inflight", 16));
const PLAIN = flag("plain", false);

const server = await startRedis();
const redis = new Redis(server.url);
const pid = Number(execFileSync("redis-cli", ["-p", String(server.port), "INFO", "server"], { encoding: "utf8" }).match(/process_id:(\d+)/)[1]);
const log = createRedisRoomLog(redis, { busMode: "sharded" });
const limiter = createRateLimit(redis, { keyPrefix: "chat:rl:msg", points: 1e9, durationSeconds: 1, burst: { points: 20, durationSeconds: 10 } });
const quota = createStorageQuota(redis, { userBytes: 1e12, roomBytes: 1e12, totalBytes: 1e12, windowSeconds: 3600 });
const body = (i) => ({ room: `r${i % ROOMS}`, text: `BENCH:1:${i}:${Date.now()}.123`, user: { id: `u${i % (2 * ROOMS)}`, name: `user ${i % (2 * ROOMS)}` } });
const one = (i) => {
  const b = body(i);
  if (PLAIN) return log.append(b.room, "message", b);
  return log.appendLimited(b.room, "message", b, { limiter, key: b.user.id }, { charge: quota.prepare(b.user.id, b.room, 100) });
};
for (let i = 0; i < 2000; i++) await one(i); // warm-up
execFileSync("redis-cli", ["-p", String(server.port), "CONFIG", "RESETSTAT"]);
const cpu0 = cpuSeconds(pid);
const t0 = Date.now();
let next = 0;
await Promise.all(
  Array.from({ length: INFLIGHT }, async () => {
    while (next < N) await one(next++);
  }),
);
const cpu = cpuSeconds(pid) - cpu0;
const stats = execFileSync("redis-cli", ["-p", String(server.port), "INFO", "commandstats"], { encoding: "utf8" })
  .split("\n")
  .map((l) => /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(l.trim()))
  .filter(Boolean)
  .map(([, cmd, calls, usec]) => `${cmd} ${(Number(calls) / N).toFixed(2)}/append ${(Number(usec) / N).toFixed(2)} µs/append`);
console.log(`${PLAIN ? "plain" : "limited+charged"}: ${N} appends in ${Date.now() - t0} ms; redis-server CPU ${((1e6 * cpu) / N).toFixed(1)} µs/append`);
console.log(stats.join("\n"));
redis.disconnect();
await server.dispose();
