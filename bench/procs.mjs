// Processes for the bench: Redis, 3 chat pods or 3 baseline servers, the notifier, the load
// generator child and its RPC, and CPU/RSS accounting from /proc.
import { fork, spawn, execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startRedis, startService, stopAllServices, waitFor } from "@chat/testkit";

export const root = fileURLToPath(new URL("../", import.meta.url));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The chat's environment in every run: its defaults (history, presence, metrics, and the rate
 * limits: 10 msg/s + 20 per 10 s per user, 120 joins/min per connection, 20 connections per
 * user) except the per-address connection limit, since every bench client comes from 127.0.0.1.
 */
export const CHAT_ENV = { LOG_LEVEL: "info", RATE_LIMIT_CONNECTIONS_PER_IP: "0", MAX_OPEN_PER_ADDRESS: "0" };
/** Extra environment for every server process, chat and baseline (`--server-env=K=V,...`). */
export const serverEnv = {};
/** Extra environment for the chat pods only (`--chat-env=K=V,...`). */
export const chatEnv = {};

/** Everything started here, stopped on the way out whatever happens. */
const cleanups = new Set();
export async function cleanupAll() {
  await stopAllServices().catch(() => undefined);
  await Promise.allSettled([...cleanups].map((fn) => fn()));
  cleanups.clear();
}

// ---------------------------------------------------------------------------------------------
// Process accounting from /proc.
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}
export function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
}
function redisPid(port) {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.startsWith("redis-server") && (cmd.includes(`:${port}`) || cmd.includes(`--port ${port}`))) return Number(entry);
    } catch {
      /* gone */
    }
  }
  throw new Error(`no redis-server pid for port ${port}`);
}
/** CPU-seconds the whole machine was busy so far (from /proc/stat), to spot a busy neighbour. */
export function machineBusySeconds() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK; // user nice system irq softirq steal
}
export const cpuOf = (pids) => Object.fromEntries(pids.map(({ name, pid }) => [name, cpuSeconds(pid)]));

// ---------------------------------------------------------------------------------------------
// The load generator child and its RPC.
/** A load-generator child (`file`: bench/loadgen.mjs, or another script answering the same RPC). */
export async function startLoadgen(file = "bench/loadgen.mjs") {
  const prof = process.env.BENCH_LOADGEN_PROF;
  const child = fork(join(root, file), [], {
    execArgv: prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    execFileSync("prlimit", [`--pid=${child.pid}`, "--nofile=200000:200000"], { stdio: "ignore" });
  } catch {
    /* not root: rely on ulimit -n */
  }
  const waiting = new Map();
  let ids = 0;
  await new Promise((resolve) => child.once("message", resolve));
  // A child that dies answers every call still waiting with an error, so that no scenario hangs on it.
  child.once("exit", (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`${file} exited (${signal ?? code})`));
    waiting.clear();
  });
  child.on("message", ({ id, result, error }) => {
    const w = waiting.get(id);
    if (!w) return;
    waiting.delete(id);
    if (error) w.reject(new Error(`loadgen: ${error}`));
    else w.resolve(result);
  });
  return {
    pid: child.pid,
    call: (cmd, a = {}) =>
      new Promise((resolve, reject) => {
        const id = ++ids;
        waiting.set(id, { resolve, reject });
        child.send({ id, cmd, args: a });
      }),
    stop: () => child.kill(prof ? "SIGINT" : "SIGKILL"),
  };
}

// ---------------------------------------------------------------------------------------------
// Servers: chat pods or baseline servers, on one Redis.
function raiseFdLimit(pid) {
  try {
    execFileSync("prlimit", [`--pid=${pid}`, "--nofile=200000:200000"], { stdio: "ignore" });
  } catch {
    /* not root: rely on ulimit -n */
  }
}

/** A baseline server (bench/baseline-server.mjs), or with kind "floor" the raw floor (bench/floor-server.mjs). */
async function startBaseline(redisUrl, i, { profileDir, kind = "baseline", env = {} } = {}) {
  const prof = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn(process.execPath, [...prof, join(root, `bench/${kind}-server.mjs`)], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: "0", REDIS_URL: redisUrl, ...serverEnv, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  raiseFdLimit(child.pid);
  const port = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const m = /"port":(\d+)/.exec(buf);
      if (m && /is up/.test(buf)) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`${kind} exited ${code}`)));
  });
  const exited = new Promise((r) => child.once("exit", r));
  cleanups.add(() => child.kill("SIGKILL"));
  const stop = async (signal = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { name: `${kind}-${i}`, pid: child.pid, url: `http://127.0.0.1:${port}`, port, stop };
}

/** A chat pod under `node --cpu-prof` (not allowed in NODE_OPTIONS, so spawned here with startService's env). */
async function startChatProfiled(env, dir) {
  const child = spawn(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "services/chat/dist/main.js"], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: "0", PROBE_PORT: "0", SHUTDOWN_DELAY_SECONDS: "0", DRAIN_SECONDS: "1", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  raiseFdLimit(child.pid);
  const exited = new Promise((r) => child.once("exit", r));
  cleanups.add(() => child.kill("SIGKILL"));
  const up = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const line = buf.split("\n").find((l) => / is up at /.test(l));
      if (line) resolve(JSON.parse(line));
    });
    child.once("exit", (code) => reject(new Error(`${env.POD_NAME} exited ${code}`)));
  });
  child.stdout.resume();
  await waitFor(async () => (await fetch(`http://127.0.0.1:${up.probePort}/readyz`).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 15_000 });
  return {
    name: env.POD_NAME,
    pid: child.pid,
    url: `http://127.0.0.1:${up.port}`,
    port: up.port,
    stop: async (signal = "SIGKILL") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

async function startChat(redisUrl, i, { profileDir, env = {} } = {}) {
  const full = { ...CHAT_ENV, POD_NAME: `chat-${i}`, REDIS_URL: redisUrl, ...serverEnv, ...chatEnv, ...env };
  if (profileDir) return startChatProfiled(full, profileDir);
  const svc = await startService("chat", { pod: `chat-${i}`, env: full });
  raiseFdLimit(svc.child.pid);
  return {
    name: `chat-${i}`,
    pid: svc.child.pid,
    url: svc.url,
    port: svc.port,
    svc,
    stop: async (signal = "SIGKILL") => {
      await svc.kill(signal);
      await svc.exited;
    },
  };
}

export async function startNotifier(redisUrl, keys) {
  const svc = await startService("notifier", {
    pod: "notifier-0",
    env: { REDIS_URL: redisUrl, NOTIFIER_API_KEYS: keys.join(","), LOG_LEVEL: "info" },
  });
  cleanups.add(() => svc.kill("SIGKILL"));
  return svc;
}

/** Redis and `pods` processes of `kind` ("chat", "baseline" or "floor"); `env` goes to each. */
export async function setup(kind, { pods = 3, aof = false, profileDir, env } = {}) {
  const redis = await startRedis({ aof });
  cleanups.add(() => redis.dispose());
  const servers = await Promise.all(
    Array.from({ length: pods }, (_, i) =>
      kind === "chat" ? startChat(redis.url, i, { profileDir, env }) : startBaseline(redis.url, i, { profileDir, kind, env }),
    ),
  );
  await sleep(300); // let the adapters' subscriptions settle
  const pids = () => [...servers.map((s) => ({ name: s.name, pid: s.pid })), { name: "redis", pid: redisPid(redis.port) }];
  return {
    kind,
    redis,
    servers,
    urls: servers.map((s) => s.url),
    pids,
    async teardown() {
      await Promise.all(servers.map((s) => s.stop()));
      await redis.dispose();
    },
  };
}
