import proxyaddr from "proxy-addr";
import { z } from "zod";
import { DENYLIST_MAX_SECONDS, env, parseEnv, redisTopologyCheck, redisTopologyEnv, type EnvCheck } from "@chat/shared";
import type { TrustProxy } from "./client-address.js";

/** `1`/`true` or `0`/`false`. */
const flag = (fallback: boolean) =>
  z
    .enum(["0", "1", "true", "false"], { message: "must be 0, 1, true or false" })
    .transform((value) => value === "1" || value === "true")
    .default(fallback);

/**
 * `TRUST_PROXY`: `0` (the peer is the client), a hop count (trusts X-Forwarded-For from any peer:
 * kept for existing deployments), or the proxies' addresses and CIDRs, comma-separated, or
 * proxy-addr's names `loopback`, `linklocal`, `uniquelocal`.
 */
const trustProxy = z
  .string()
  .default("0")
  .transform((value, ctx): TrustProxy => {
    if (/^\d+$/.test(value)) {
      const hops = Number(value);
      if (hops <= 10) return { hops };
      ctx.addIssue({ code: "custom", message: "a hop count must be at most 10; better, list the proxies' addresses or CIDRs" });
      return z.NEVER;
    }
    const proxies = value
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean);
    try {
      proxyaddr.compile(proxies);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: `must be 0, a hop count, or proxy addresses/CIDRs like 10.0.0.0/8,loopback (${(err as Error).message})` });
      return z.NEVER;
    }
    return { proxies };
  });

/**
 * The chat service's configuration: the only place that reads `process.env`. Every variable is
 * documented in README.md and .env.example.
 */
const schema = z.object({
  /** Port of the HTTP + Socket.IO listener. 0 picks a free port (tests use it). */
  PORT: env.port(3000),
  /** Address to listen on. */
  HOST: z.string().default("0.0.0.0"),
  /** Port of `/livez`, `/readyz` and `/metrics`; the LoadBalancer never exposes it. */
  PROBE_PORT: env.port(9100),
  /** Seconds between failing readiness on SIGTERM and starting to drain. */
  SHUTDOWN_DELAY_SECONDS: env.nonNegativeInt(5, 300),
  /** Seconds over which a draining pod disconnects its clients, in even batches. */
  DRAIN_SECONDS: env.nonNegativeInt(10, 600),
  /** Redis for scale-out. Unset (and no sentinels or cluster nodes): a single node with the in-memory adapter. */
  REDIS_URL: env.redisUrl(),
  /** Or Redis through Sentinel, or a Redis Cluster, and the REDIS_WAIT_* acks: the same rules for both services (shared redis-config.ts). */
  // REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, REDIS_CLUSTER_NODES, REDIS_TLS,
  // REDIS_WAIT_REPLICAS, REDIS_WAIT_TIMEOUT_MS, REDIS_PASSWORD, REDIS_USERNAME: one definition for both
  // services (shared redis-config.ts), named here for the chart's env contract (scripts/lib/env-contract.mjs).
  ...redisTopologyEnv,
  /** A PEM CA bundle for `rediss://`. */
  REDIS_TLS_CA_FILE: env.caFile(),
  /** PEM certificate (chain) to serve https/wss with; reloaded when the file changes. Needs TLS_KEY_FILE. */
  TLS_CERT_FILE: env.readableFile(),
  /** PEM private key of TLS_CERT_FILE. */
  TLS_KEY_FILE: env.readableFile(),
  /** `auto`, `classic` or `sharded` pub/sub between the pods; the notifier reads the same. */
  BUS_MODE: env.busMode(),
  LOG_LEVEL: env.logLevel(),
  /** Shown in logs and used to tell pods apart; defaults to the hostname (the pod name on Kubernetes). */
  POD_NAME: env.podName(),
  /** `open`: a display name is the identity (local use). `jwt`: a signed token is required. */
  AUTH_MODE: z.enum(["open", "jwt"], { message: "must be open or jwt" }).default("open"),
  /** HS256 secret, at least 32 characters. */
  JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  /** An RS256 or ES256 public key (PEM; `\n` escapes are allowed). */
  JWT_PUBLIC_KEY: env.publicKey(),
  /** A JWKS URL, fetched and cached. */
  JWT_JWKS_URL: z.url({ protocol: /^https?$/, message: "must be an http(s) URL, e.g. https://id.example.com/.well-known/jwks.json" }).optional(),
  /** When set, tokens must carry this `iss`. */
  JWT_ISSUER: z.string().optional(),
  /** When set, tokens must carry this `aud`. */
  JWT_AUDIENCE: z.string().optional(),
  /** Longest a token may still have to live (`exp` - now); by default as far as the revocation denylist reaches. */
  JWT_MAX_LIFETIME_SECONDS: env.positiveInt(DENYLIST_MAX_SECONDS, DENYLIST_MAX_SECONDS),
  /** Refuse tokens without a `jti` (which could never be revoked). */
  JWT_REQUIRE_JTI: flag(false),
  /** Serve `/debug/bus` on the probe port (it names users, sessions and rooms). */
  DEBUG_ENDPOINTS: flag(false),
  /** Browser origins allowed to connect, comma-separated; unset: same origin only. */
  CORS_ORIGINS: z
    .string()
    .transform((value) =>
      value
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.string().superRefine((origin, ctx) => {
          if (origin === "*") ctx.addIssue({ code: "custom", message: "* is not allowed: list the origins, e.g. https://chat.example.com" });
          else if (!URL.canParse(origin)) ctx.addIssue({ code: "custom", message: "must list origins like https://chat.example.com" });
        }),
      ),
    )
    .optional(),
  /** Proxies in front of the pods whose X-Forwarded-For is trusted: addresses/CIDRs, or a hop count (0: none). */
  TRUST_PROXY: trustProxy,
  /** Messages per user per second, sustained, across all pods (0: no limit). */
  RATE_LIMIT_MESSAGES_PER_SECOND: env.nonNegativeInt(10, 100_000),
  /** Extra messages per user per 10 seconds once the sustained rate is spent. */
  RATE_LIMIT_MESSAGES_BURST: env.nonNegativeInt(20, 100_000),
  /** Joins per connection per minute (0: no limit). */
  RATE_LIMIT_JOINS_PER_MINUTE: env.nonNegativeInt(120, 100_000),
  /**
   * Joins and `history` requests per user per minute, across all pods (0: no limit). Unlike the
   * per-connection join limit, reconnecting does not reset it.
   */
  RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: env.nonNegativeInt(300, 1_000_000),
  /**
   * Per client address per minute, across all pods (0: no limit): failed handshakes in jwt mode,
   * every new connection in open mode.
   */
  RATE_LIMIT_CONNECTIONS_PER_IP: env.nonNegativeInt(120, 1_000_000),
  /**
   * Storage quotas: bytes added to room logs per `QUOTA_WINDOW_SECONDS`, per user, per room and
   * in total, across all pods (0: no limit). Without them one account stored about 1 GB an hour.
   */
  QUOTA_USER_BYTES: env.nonNegativeInt(10_000_000, 1e12),
  QUOTA_ROOM_BYTES: env.nonNegativeInt(50_000_000, 1e12),
  QUOTA_TOTAL_BYTES: env.nonNegativeInt(1_000_000_000, 1e12),
  QUOTA_WINDOW_SECONDS: env.positiveInt(3600, 7 * 86_400),
  /** New connections per authenticated user per minute, across all pods, in jwt mode (0: no limit). */
  RATE_LIMIT_CONNECTIONS_PER_USER: env.nonNegativeInt(60, 1_000_000),
  /** Events (join, leave, message, anything) one connection may send per second, sustained, counted in memory (0: no limit). */
  RATE_LIMIT_EVENTS_PER_SECOND: env.nonNegativeInt(20, 100_000),
  /** Events one connection may send at once: enough to re-join `MAX_ROOMS_PER_CONNECTION` rooms after a reconnect. */
  RATE_LIMIT_EVENTS_BURST: env.positiveInt(150, 1_000_000),
  /** `GET /v1/rooms/:room/members` per user (jwt) or address (open) per minute (0: no limit). */
  RATE_LIMIT_MEMBERS_PER_MINUTE: env.nonNegativeInt(60, 1_000_000),
  /** Open TCP sockets, and open Engine.IO sessions, one client address may hold on a pod (0: no cap). */
  MAX_OPEN_PER_ADDRESS: env.nonNegativeInt(100, 1_000_000),
  /** Rooms one connection may be in. */
  MAX_ROOMS_PER_CONNECTION: env.positiveInt(100, 10_000),
  /** Connections one user may hold at once, across all pods (0: no limit). */
  MAX_CONNECTIONS_PER_USER: env.nonNegativeInt(20, 100_000),
  /** Longest message text, in characters. */
  MAX_TEXT_LENGTH: env.positiveInt(4000, 1_000_000),
  /** Largest Socket.IO frame in bytes; a bigger frame closes that connection (and only it). */
  MAX_HTTP_BUFFER_SIZE: env.positiveInt(64 * 1024, 100 * 1024 * 1024),
  /**
   * Bytes one connection may have queued and unread (Engine.IO's buffer, ws's and the TCP
   * socket's) before it is closed as `slow_consumer`; 0 turns the budget off.
   */
  MAX_CLIENT_BUFFER_BYTES: env.nonNegativeInt(1024 * 1024, 1024 * 1024 * 1024),
  /** `auto`: the fast delivery paths, each after its start-up check; `off`: Socket.IO's public paths only. */
  FAST_PATH: z.enum(["auto", "off"], { message: "must be auto or off" }).default("auto"),
  /** Seconds after which a dead pod's members drop out of presence lists. */
  PRESENCE_TTL_SECONDS: env.positiveInt(30, 3600),
  /**
   * Rooms with more members than this announce no joins and leaves and list this many members in a
   * join ack (each announcement goes to every member: a storm of N joins would cost N² frames); 0: every room announces.
   */
  PRESENCE_ANNOUNCE_MAX_MEMBERS: env.nonNegativeInt(200, 1_000_000),
  /** Entries kept in each room's log (approximately: trimmed in blocks). */
  HISTORY_MAX_ENTRIES: env.positiveInt(1000, 1_000_000),
  /** Log entries older than this are trimmed; 0 keeps them however old. */
  HISTORY_MAX_AGE_SECONDS: env.nonNegativeInt(604_800),
  /** Messages a `join` without `since` returns. */
  HISTORY_ON_JOIN: env.nonNegativeInt(50, 1000),
  /** Most entries one `join {since}` catch-up returns; beyond it the ack says `more` and the client pages with `history`. */
  CATCH_UP_MAX_ENTRIES: env.positiveInt(200, 10_000),
  /** Most bytes of stored entries one catch-up or `history` page returns (at least one entry is always returned). */
  CATCH_UP_MAX_BYTES: env.positiveInt(256 * 1024, 64 * 1024 * 1024),
  /** How long a `clientMsgId` is remembered, so a retry is not stored or delivered twice. */
  CLIENT_MSG_ID_TTL_SECONDS: env.positiveInt(300, 86_400),
});

/** Rules between variables, checked on the raw values so they show up next to any other problem. */
const checks: EnvCheck[] = [
  redisTopologyCheck({ required: false, service: "chat" }),
  (raw) => {
    if ((raw.TLS_CERT_FILE === undefined) === (raw.TLS_KEY_FILE === undefined)) return [];
    const missing = raw.TLS_CERT_FILE === undefined ? "TLS_CERT_FILE" : "TLS_KEY_FILE";
    return [`${missing}: is required with TLS_CERT_FILE / TLS_KEY_FILE: set both (a certificate and its key) or neither`];
  },
  (raw) => {
    if (raw.AUTH_MODE !== "jwt") return [];
    const set = ["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"].filter((name) => raw[name] !== undefined);
    if (set.length === 1) return [];
    return [`AUTH_MODE: jwt needs exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL; ${set.length ? `got ${set.join(" and ")}` : "none is set"}`];
  },
  (raw) => {
    // Two listeners cannot share a port: say so now, not as EADDRINUSE after the probes started.
    const port = raw.PORT === undefined ? "3000" : raw.PORT;
    const probe = raw.PROBE_PORT === undefined ? "9100" : raw.PROBE_PORT;
    return port === probe && port !== "0" ? [`PORT: must differ from PROBE_PORT (both are ${port})`] : [];
  },
];

export type ChatConfig = z.infer<typeof schema>;

export function loadConfig(source: NodeJS.ProcessEnv = process.env): ChatConfig {
  return parseEnv(schema, source, checks);
}
