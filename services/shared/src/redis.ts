import { readFileSync } from "node:fs";
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "./logger.js";

/** How to reach Redis beyond its URL: a password kept out of the URL, and a CA for TLS. */
export interface RedisSettings {
  /** `REDIS_USERNAME`: the ACL user, when the URL names none (the chart's `chat` user). @default the default user */
  username?: string;
  /** `REDIS_PASSWORD`: used when the URL carries none (keeps the password in a Secret). */
  password?: string;
  /** `REDIS_TLS_CA_FILE`: a PEM CA bundle to trust for `rediss://` (Memorystore, ElastiCache). */
  caFile?: string;
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
export function createRedisClient(url: string, { role, log, options }: RedisClientOptions): Redis {
  const client = new Redis(url, {
    // Reconnect forever: an outage of Redis must not take the pod down with it.
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    // Commands sent while Redis is down are queued (the offline queue), so a brief blip or the
    // first connect costs nothing, but only until one reconnection attempt has failed: then they
    // are rejected (MaxRetriesPerRequestError), and callers turn that into a clear `unavailable`
    // error rather than an answer that comes minutes later or never.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    ...options,
  });
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
  return client;
}

/** True when the client can take commands right now. */
export function isRedisReady(client: Redis | undefined): boolean {
  return client?.status === "ready";
}
