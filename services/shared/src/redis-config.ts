import { z } from "zod";
import type { EnvCheck } from "./config.js";

/** One `host:port` of `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES`. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Where Redis is, as the configuration names it: one server (`REDIS_URL`), a master found through
 * Sentinel (`REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER`), or a Redis Cluster (`REDIS_CLUSTER_NODES`).
 */
export type RedisTarget =
  | { kind: "url"; url: string }
  | { kind: "sentinel"; sentinels: HostPort[]; master: string; sentinelPassword?: string }
  | { kind: "cluster"; nodes: HostPort[] };

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

/** `host:port,host:port`: at least one, every port 1-65535 (IPv6 hosts in brackets). */
const hostPorts = (example: string) =>
  z
    .string()
    .transform((value, ctx): HostPort[] => {
      const list = value
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean);
      const parsed: HostPort[] = [];
      for (const item of list) {
        const match = HOST_PORT.exec(item);
        const port = Number(match?.[2]);
        if (!match || port < 1 || port > 65535) {
          ctx.addIssue({ code: "custom", message: `must be host:port pairs, comma-separated, e.g. ${example}; "${item}" is not one` });
          return z.NEVER;
        }
        parsed.push({ host: (match[1] ?? "").replace(/^\[|\]$/g, ""), port });
      }
      if (!parsed.length) {
        ctx.addIssue({ code: "custom", message: `must list at least one host:port, e.g. ${example}` });
        return z.NEVER;
      }
      return parsed;
    })
    .optional();

/**
 * The variables that say where Redis is beyond `REDIS_URL`, the same for the chat and the notifier
 * (each service's config.ts spreads them into its schema).
 */
export const redisTopologyEnv = {
  /** Redis password, when it is not in the URL (so it can come from a Secret on its own). */
  REDIS_PASSWORD: z.string().optional(),
  /** Redis ACL user, when it is not in the URL (the chart's services user cannot run admin commands). */
  REDIS_USERNAME: z.string().min(1).optional(),
  /** Sentinels to ask for the master, e.g. `sentinel-0:26379,sentinel-1:26379,sentinel-2:26379`. */
  REDIS_SENTINELS: hostPorts("redis-sentinel-0:26379,redis-sentinel-1:26379,redis-sentinel-2:26379"),
  /** The master group's name the sentinels monitor (`sentinel monitor <name> ...`). */
  REDIS_SENTINEL_MASTER: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,200}$/, "must be the master group's name from `sentinel monitor`, e.g. mymaster")
    .optional(),
  /** The sentinels' own password (`requirepass` in sentinel.conf), when they have one. */
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  /** Seed nodes of a Redis Cluster, e.g. the configuration endpoint of ElastiCache or Memorystore Cluster's discovery endpoint. */
  REDIS_CLUSTER_NODES: hostPorts("redis-0:6379,redis-1:6379,redis-2:6379"),
  /** TLS to the Redis servers (and sentinels) named without a URL; `rediss://` says it for `REDIS_URL`. */
  REDIS_TLS: z
    .enum(["0", "1", "true", "false"], { message: "must be 0, 1, true or false" })
    .transform((value) => value === "1" || value === "true")
    .default(false),
  /**
   * Replicas that must confirm a message (Redis `WAIT`) before it is acked; 0 acks once the master
   * has it. With 1 and a replica, a failover loses no acked message.
   */
  REDIS_WAIT_REPLICAS: z.coerce
    .number({ message: "must be a number" })
    .int("must be a whole number")
    .min(0, "must be 0 or more")
    .max(16, "must be at most 16")
    .default(0),
  /** How long `WAIT` may take before the send fails as `unavailable` (the message may still be stored). */
  REDIS_WAIT_TIMEOUT_MS: z.coerce
    .number({ message: "must be a number" })
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(60_000, "must be at most 60000")
    .default(1000),
};

/**
 * `REDIS_URL`, `REDIS_SENTINELS` and `REDIS_CLUSTER_NODES` exclude each other, `REDIS_SENTINELS`
 * needs `REDIS_SENTINEL_MASTER`, and with `required` one of the three must be set.
 */
export function redisTopologyCheck({ required, service }: { required: boolean; service: string }): EnvCheck {
  return (raw) => {
    const set = ["REDIS_URL", "REDIS_SENTINELS", "REDIS_CLUSTER_NODES"].filter((name) => raw[name] !== undefined);
    const problems: string[] = [];
    if (set.length > 1) problems.push(`${set[1]}: cannot be set together with ${set[0]}: name Redis one way, a URL, sentinels or cluster nodes`);
    if (!set.length && required)
      problems.push(`REDIS_URL: is required: the ${service} reaches chat pods only through Redis; set REDIS_URL (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES)`);
    if (raw.REDIS_SENTINELS !== undefined && raw.REDIS_SENTINEL_MASTER === undefined)
      problems.push("REDIS_SENTINEL_MASTER: is required with REDIS_SENTINELS: the master group's name from `sentinel monitor`, e.g. mymaster");
    if (raw.REDIS_SENTINELS === undefined && raw.REDIS_SENTINEL_MASTER !== undefined) problems.push("REDIS_SENTINEL_MASTER: is set but REDIS_SENTINELS is not");
    if (raw.REDIS_URL !== undefined && (raw.REDIS_TLS === "1" || raw.REDIS_TLS === "true"))
      problems.push("REDIS_TLS: is for REDIS_SENTINELS and REDIS_CLUSTER_NODES; with REDIS_URL, write rediss:// instead");
    if (raw.REDIS_WAIT_REPLICAS !== undefined && raw.REDIS_WAIT_REPLICAS !== "0" && !set.length)
      problems.push("REDIS_WAIT_REPLICAS: needs Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)");
    // WAIT confirms the writes of one connection to one master; a room's append goes to its slot's master.
    if (raw.REDIS_WAIT_REPLICAS !== undefined && raw.REDIS_WAIT_REPLICAS !== "0" && raw.REDIS_CLUSTER_NODES !== undefined)
      problems.push("REDIS_WAIT_REPLICAS: is not available on a Redis Cluster (REDIS_CLUSTER_NODES); set it to 0 (docs/deploy.md states the window)");
    return problems;
  };
}

/** The target a parsed configuration names, or undefined without Redis. */
export function redisTarget(config: {
  REDIS_URL?: string;
  REDIS_SENTINELS?: HostPort[];
  REDIS_SENTINEL_MASTER?: string;
  REDIS_SENTINEL_PASSWORD?: string;
  REDIS_CLUSTER_NODES?: HostPort[];
}): RedisTarget | undefined {
  if (config.REDIS_URL) return { kind: "url", url: config.REDIS_URL };
  if (config.REDIS_SENTINELS && config.REDIS_SENTINEL_MASTER)
    return { kind: "sentinel", sentinels: config.REDIS_SENTINELS, master: config.REDIS_SENTINEL_MASTER, sentinelPassword: config.REDIS_SENTINEL_PASSWORD };
  if (config.REDIS_CLUSTER_NODES) return { kind: "cluster", nodes: config.REDIS_CLUSTER_NODES };
  return undefined;
}
