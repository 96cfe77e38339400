import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { freePort, waitFor } from "./wait.js";
import { startRedis, type RedisServer } from "./redis.js";

const run = promisify(execFile);

/** A real Redis Cluster of `redis-server` masters (and replicas, when asked), each on free ports. */
export interface RedisCluster {
  /** Every node, each a `RedisServer` (its `url` reaches that node alone); masters first, as created. */
  nodes: RedisServer[];
  /** `REDIS_CLUSTER_NODES` for a service. */
  env: Record<string, string>;
  /** The nodes that are masters now (after a failover, a former replica). */
  masters(): Promise<RedisServer[]>;
  /** `{ host, port }` of every master: what an ioredis `Cluster` starts from. */
  startupNodes: { host: string; port: number }[];
  /** Stops every node and removes its data. */
  dispose(): Promise<void>;
}

export interface RedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /** Replicas of each master. @default 0 */
  replicasPerMaster?: number;
  /**
   * `cluster-node-timeout`: how long a master may be unreachable before its replica takes over.
   * @default 2000
   */
  nodeTimeoutMs?: number;
  /**
   * `cluster-require-full-coverage`: yes stops every master (CLUSTERDOWN) from the moment one is
   * marked failed until its replica is promoted; no (what docs/deploy.md asks of a deployment) lets
   * the other masters serve their slots meanwhile.
   * @default false
   */
  requireFullCoverage?: boolean;
}

/**
 * Starts `masters * (1 + replicasPerMaster)` cluster-enabled servers and joins them with
 * `redis-cli --cluster create`, then waits until every node reports `cluster_state:ok` and
 * every replica is in sync. The cluster bus port of each node is a free port of its own
 * (`--cluster-port`), not port + 10000, which may be taken.
 */
export async function startRedisCluster({
  masters = 3,
  replicasPerMaster = 0,
  nodeTimeoutMs = 2000,
  requireFullCoverage = false,
}: RedisClusterOptions = {}): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const cli = (port: number, ...args: string[]) => run("redis-cli", ["-p", String(port), ...args]).then((r) => r.stdout);
  try {
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
      // The bus port, like the server's, may be taken between freePort() and the bind: try fresh ones.
      for (let attempt = 1; ; attempt++) {
        const busPort = await freePort();
        const args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", String(busPort)];
        args.push("--cluster-require-full-coverage", requireFullCoverage ? "yes" : "no");
        try {
          nodes.push(await startRedis({ args: [...args, "--cluster-node-timeout", String(nodeTimeoutMs)], avoidPorts: [busPort] }));
          break;
        } catch (err) {
          if (attempt >= 5 || !/Address already in use/.test((err as Error).message)) throw err;
        }
      }
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", String(replicasPerMaster), "--cluster-yes"]);
    await waitFor(
      async () => {
        const states = await Promise.all(nodes.map((n) => cli(n.port, "cluster", "info")));
        if (!states.every((state) => state.includes("cluster_state:ok"))) return false;
        const roles = await Promise.all(nodes.map((n) => cli(n.port, "info", "replication")));
        // A replica that has not finished its first sync could not take over yet.
        return roles.every((info) => info.includes("role:master") || info.includes("master_link_status:up"));
      },
      { timeoutMs: 20_000, intervalMs: 100, what: "the Redis Cluster to be ok on every node" },
    );
  } catch (err) {
    await Promise.all(nodes.map((n) => n.dispose()));
    throw err;
  }
  const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
  return {
    nodes,
    env: { REDIS_CLUSTER_NODES: addresses.slice(0, masters).join(",") },
    async masters() {
      const roles = await Promise.all(nodes.map((n) => cli(n.port, "role").catch(() => "")));
      return nodes.filter((_, i) => roles[i]!.startsWith("master"));
    },
    startupNodes: nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
    async dispose() {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
}
