import { startRedisCluster } from "./redis-cluster.js";
import { startRedis } from "./redis.js";
import { startRedisSentinel } from "./redis-sentinel.js";

/** The ways a deployment can run Redis; the services are tested on each. */
export type RedisEngineKind = "standalone" | "sentinel" | "cluster";

/** Redis as a test runs the services against it, whatever the engine. */
export interface RedisEngine {
  kind: RedisEngineKind;
  /** What a service needs to reach it: `REDIS_URL`, or `REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER`, or `REDIS_CLUSTER_NODES`. */
  env: Record<string, string>;
  /**
   * A URL that reaches the master as started (standalone and sentinel; for assertions that read
   * keys directly). After a failover it names a replica.
   */
  url: string;
  /** Stops every process and removes its data. */
  dispose(): Promise<void>;
}

/**
 * The engines the parametrised suites run on. Sentinel costs about 2 s of start-up per suite,
 * a cluster about 5; the engines a service does not support yet are left out (see README).
 */
export const REDIS_ENGINES: readonly RedisEngineKind[] = ["standalone", "sentinel", "cluster"];

/** Starts `kind` on free ports: one server, a master + replica + 3 sentinels, or 3 masters + 3 replicas. */
export async function startRedisEngine(kind: RedisEngineKind, { password }: { password?: string } = {}): Promise<RedisEngine> {
  if (kind === "standalone") {
    const server = await startRedis({ password });
    return { kind, env: { REDIS_URL: server.url }, url: server.url, dispose: () => server.dispose() };
  }
  if (kind === "sentinel") {
    const set = await startRedisSentinel({ password });
    return { kind, env: { ...set.env, ...(password ? { REDIS_PASSWORD: password } : {}) }, url: set.servers[0]!.url, dispose: () => set.dispose() };
  }
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  return { kind, env: cluster.env, url: cluster.nodes[0]!.url, dispose: () => cluster.dispose() };
}
