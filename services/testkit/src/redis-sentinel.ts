import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startRedis, type RedisServer } from "./redis.js";
import { freePort, waitFor } from "./wait.js";
import { killOnExit } from "./children.js";

const run = promisify(execFile);

/** The master group name the sentinels monitor. */
export const SENTINEL_MASTER = "chatmaster";

export interface RedisSentinelSet {
  /** The first master and its replicas, as started (after a failover their roles change). */
  servers: RedisServer[];
  /** Ports of the three `redis-sentinel` processes. */
  sentinelPorts: number[];
  /** `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER` for a service. */
  env: Record<string, string>;
  /** The server the sentinels currently name as master. */
  master(): Promise<RedisServer>;
  /** Stops everything and removes its data. */
  dispose(): Promise<void>;
}

export interface RedisSentinelOptions {
  /** `requirepass` (and `masterauth`) of both servers; the sentinels use it too. */
  password?: string;
  /**
   * How long a master must be unreachable before the sentinels call it down.
   * @default 1000
   */
  downAfterMs?: number;
  /** Persist with AOF, `appendfsync always`. @default false */
  aof?: boolean;
  /** Replicas of the master; with `REDIS_WAIT_REPLICAS=1` a failover needs 2 to keep one. @default 1 */
  replicas?: number;
}

/**
 * A real Sentinel deployment on free ports: a master, its replicas, three `redis-sentinel`
 * processes with quorum 2. Returns once the sentinels agree on the master, know the replica
 * and see each other, so a failover can start at once.
 */
export async function startRedisSentinel({ password, downAfterMs = 1000, aof = false, replicas = 1 }: RedisSentinelOptions = {}): Promise<RedisSentinelSet> {
  const auth = password ? ["--masterauth", password] : [];
  const servers: RedisServer[] = [];
  const sentinels: { child: ChildProcess; dir: string; exited: Promise<void> }[] = [];
  const sentinelPorts: number[] = [];
  async function dispose() {
    for (const s of sentinels) s.child.kill("SIGKILL");
    await Promise.all(sentinels.map((s) => s.exited));
    for (const s of sentinels) rmSync(s.dir, { recursive: true, force: true });
    await Promise.all(servers.map((s) => s.dispose()));
  }
  try {
    servers.push(await startRedis({ password, aof, args: auth }));
    const masterPort = servers[0]!.port;
    for (let i = 0; i < replicas; i++) servers.push(await startRedis({ password, aof, args: [...auth, "--replicaof", "127.0.0.1", String(masterPort)] }));
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "chat-sentinel-"));
      const conf = join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${downAfterMs}`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          ...(password ? [`sentinel auth-pass ${SENTINEL_MASTER} ${password}`] : []),
          "",
        ].join("\n"),
      );
      // Sentinel rewrites its config file, so each one gets its own in its own directory.
      const child = spawn("redis-sentinel", [conf], { stdio: "ignore" });
      killOnExit(child);
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.once("error", () => undefined);
      sentinels.push({ child, dir, exited });
      sentinelPorts.push(port);
    }
    const ask = (port: number, ...args: string[]) => run("redis-cli", ["-p", String(port), ...args]).then((r) => r.stdout);
    await waitFor(
      async () => {
        const views = await Promise.all(sentinelPorts.map((port) => ask(port, "sentinel", "master", SENTINEL_MASTER).catch(() => "")));
        // Each sentinel must see the replica and both other sentinels, or a failover could stall.
        return views.every((view) => new RegExp(`num-slaves\n${replicas}\n`).test(view) && /num-other-sentinels\n2\n/.test(view));
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "three sentinels that see the master, its replica and each other (is redis-sentinel on PATH?)" },
    );
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    servers,
    sentinelPorts,
    env: { REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","), REDIS_SENTINEL_MASTER: SENTINEL_MASTER },
    async master() {
      for (const port of sentinelPorts) {
        const reply = await run("redis-cli", ["-p", String(port), "sentinel", "get-master-addr-by-name", SENTINEL_MASTER]).catch(() => undefined);
        const masterPort = Number(reply?.stdout.trim().split("\n")[1]);
        const server = servers.find((s) => s.port === masterPort);
        if (server) return server;
      }
      throw new Error("no sentinel names a master");
    },
    dispose,
  };
}
