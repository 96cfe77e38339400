import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { freePort, waitFor } from "./wait.js";
import { startRedis, type RedisServer } from "./redis.js";

const run = promisify(execFile);

/** A real Redis Cluster of `redis-server` masters (no replicas), each on free ports. */
export interface RedisCluster {
  /** The masters, each a `RedisServer` (its `url` reaches that node alone). */
  nodes: RedisServer[];
  /** `{ host, port }` of every master: what an ioredis `Cluster` starts from. */
  startupNodes: { host: string; port: number }[];
  /** Stops every node and removes its data. */
  dispose(): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled servers and joins them with `redis-cli --cluster create`,
 * then waits until every node reports `cluster_state:ok`. The cluster bus port of each node is
 * a free port of its own (`--cluster-port`), not port + 10000, which may be taken.
 */
export async function startRedisCluster({ masters = 3 }: { masters?: number } = {}): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const busPort = await freePort();
      nodes.push(await startRedis({ args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", String(busPort)] }));
    }
    await run("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    await waitFor(
      async () => {
        const states = await Promise.all(nodes.map((n) => run("redis-cli", ["-p", String(n.port), "cluster", "info"]).then((r) => r.stdout)));
        return states.every((state) => state.includes("cluster_state:ok"));
      },
      { timeoutMs: 20_000, intervalMs: 100, what: "the Redis Cluster to be ok on every node" },
    );
  } catch (err) {
    await Promise.all(nodes.map((n) => n.dispose()));
    throw err;
  }
  return {
    nodes,
    startupNodes: nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
    async dispose() {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
}
