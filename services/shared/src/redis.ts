import { readFileSync } from "node:fs";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";
import type { RedisTarget } from "./redis-config.js";

/** How to reach Redis beyond its URL: a password kept out of the URL, and a CA for TLS. */
export interface RedisSettings {
  /** `REDIS_USERNAME`: the ACL user, when the URL names none (the chart's `chat` user). @default the default user */
  username?: string;
  /** `REDIS_PASSWORD`: used when the URL carries none (keeps the password in a Secret). */
  password?: string;
  /** `REDIS_TLS_CA_FILE`: a PEM CA bundle to trust for `rediss://` (Memorystore, ElastiCache). */
  caFile?: string;
  /** `REDIS_TLS`: TLS to servers named without a URL (sentinels, cluster nodes). @default false */
  tls?: boolean;
}

/** ioredis options for `settings`: the URL's own user and password win over `REDIS_USERNAME` / `REDIS_PASSWORD`. */
export function redisOptions(url: string, { username, password, caFile }: RedisSettings): RedisOptions {
  const options: RedisOptions = {};
  const parsed = new URL(url);
  if (username && !parsed.username) options.username = username;
  if (password && !parsed.password) options.password = password;
  if (caFile) options.tls = { ca: readFileSync(caFile) };
  return options;
}

export interface RedisClientOptions {
  /** A name for the logs, e.g. `pub` or `sub`. */
  role: string;
  log: Logger;
  /** Extra ioredis options (tests use them to shorten timeouts). */
  options?: RedisOptions;
}

/**
 * An ioredis client that never crashes the process: every error is logged (once per outage, not
 * once per retry), it reconnects forever with a capped back-off, and it resubscribes on its own.
 */
export function createRedisClient(url: string | undefined, { role, log, options }: RedisClientOptions): Redis {
  const settings: RedisOptions = {
    retryStrategy,
    // Commands sent while Redis is down are queued (the offline queue), so a brief blip or the
    // first connect costs nothing, but only until one reconnection attempt has failed: then they
    // are rejected (MaxRetriesPerRequestError), and callers turn that into a clear `unavailable`
    // error rather than an answer that comes minutes later or never.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    ...options,
  };
  const client = url === undefined ? new Redis(settings) : new Redis(url, settings);
  watchErrors(client, role, log);
  return client;
}

/** Reconnect forever with a capped back-off: an outage of Redis must not take the pod down with it. */
const retryStrategy = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000);

/**
 * After a Sentinel failover the old master may still answer, as a replica: its writes fail with
 * READONLY. Reconnecting asks the sentinels again and lands on the new master.
 */
const reconnectOnError = (err: Error) => (err.message.startsWith("READONLY") ? 2 : false);

/** ioredis options for a master found through Sentinel, with the password, ACL user and TLS of `settings`. */
export function sentinelOptions(target: Extract<RedisTarget, { kind: "sentinel" }>, { username, password, caFile, tls }: RedisSettings): RedisOptions {
  const tlsOptions = tls || caFile ? { ...(caFile ? { ca: readFileSync(caFile) } : {}) } : undefined;
  return {
    sentinels: target.sentinels,
    name: target.master,
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(tlsOptions ? { tls: tlsOptions, sentinelTLS: tlsOptions, enableTLSForSentinelMode: true } : {}),
    // Subscribes to the sentinels' +switch-master: the client moves to the new master as soon as
    // the failover is decided, instead of when its next command to the old one fails.
    failoverDetector: true,
    sentinelRetryStrategy: retryStrategy,
  };
}

/**
 * A client for `target` that never crashes the process (see `createRedisClient`): one server, or
 * the master the sentinels name, followed across failovers. A cluster target needs
 * `createRedisClusterClient`.
 */
export function connectRedis(target: Exclude<RedisTarget, { kind: "cluster" }>, settings: RedisSettings, client: RedisClientOptions): Redis {
  if (target.kind === "url") return createRedisClient(target.url, { ...client, options: { ...redisOptions(target.url, settings), ...client.options } });
  return createRedisClient(undefined, { ...client, options: { ...sentinelOptions(target, settings), reconnectOnError, ...client.options } });
}

/**
 * An ioredis `Cluster` for `REDIS_CLUSTER_NODES`, as forgiving as `createRedisClient`: it follows
 * MOVED/ASK and failovers on its own, and subscribes to shard channels on each channel's master.
 * With TLS the nodes are reached by the names the cluster gives out, which ElastiCache's
 * certificates are issued for (`dnsLookup` keeps them instead of resolving them to addresses).
 */
export function createRedisClusterClient(
  target: Extract<RedisTarget, { kind: "cluster" }>,
  { username, password, caFile, tls }: RedisSettings,
  { role, log, options }: Omit<RedisClientOptions, "options"> & { options?: ClusterOptions },
): Cluster {
  const tlsOptions = tls || caFile ? { ...(caFile ? { ca: readFileSync(caFile) } : {}) } : undefined;
  const cluster = new Cluster(target.nodes, {
    clusterRetryStrategy: retryStrategy,
    shardedSubscribers: true,
    enableOfflineQueue: true,
    ...(tlsOptions ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
    redisOptions: {
      maxRetriesPerRequest: 1,
      connectTimeout: 5000,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(tlsOptions ? { tls: tlsOptions } : {}),
    },
    ...options,
  });
  watchErrors(cluster, role, log);
  return cluster;
}

/** Logs the first error of an outage as a warning and the rest at debug, and the recovery once. */
function watchErrors(client: Redis | Cluster, role: string, log: Logger): void {
  let down = false;
  client.on("error", (err: Error) => {
    if (down) return log.debug({ role, err: err.message }, "redis error");
    down = true;
    log.warn({ role, err: err.message }, "redis connection lost; reconnecting");
  });
  client.on("ready", () => {
    if (down) log.info({ role }, "redis connection restored");
    else log.debug({ role }, "redis connected");
    down = false;
  });
}

/** True when the client can take commands right now. */
export function isRedisReady(client: Redis | Cluster | undefined): boolean {
  return client?.status === "ready";
}
