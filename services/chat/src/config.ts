import { z } from "zod";
import { env, parseEnv } from "@chat/shared";

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
  /** Redis for scale-out. Unset: a single node with the in-memory adapter. */
  REDIS_URL: env.redisUrl(),
  LOG_LEVEL: env.logLevel(),
  /** Shown in logs and used to tell pods apart; defaults to the hostname (the pod name on Kubernetes). */
  POD_NAME: env.podName(),
  /** Longest message text, in characters. */
  MAX_TEXT_LENGTH: env.positiveInt(4000, 1_000_000),
  /** Largest Socket.IO frame in bytes; a bigger frame closes that connection (and only it). */
  MAX_HTTP_BUFFER_SIZE: env.positiveInt(64 * 1024, 100 * 1024 * 1024),
  /** Seconds after which a dead pod's members drop out of presence lists. */
  PRESENCE_TTL_SECONDS: env.positiveInt(30, 3600),
  /** Entries kept in each room's log (approximately: trimmed in blocks). */
  HISTORY_MAX_ENTRIES: env.positiveInt(1000, 1_000_000),
  /** Log entries older than this are trimmed; 0 keeps them however old. */
  HISTORY_MAX_AGE_SECONDS: env.nonNegativeInt(604_800),
  /** Messages a `join` without `since` returns. */
  HISTORY_ON_JOIN: env.nonNegativeInt(50, 1000),
  /** How long a `clientMsgId` is remembered, so a retry is not stored or delivered twice. */
  CLIENT_MSG_ID_TTL_SECONDS: env.positiveInt(300, 86_400),
});

export type ChatConfig = z.infer<typeof schema>;

export function loadConfig(source: NodeJS.ProcessEnv = process.env): ChatConfig {
  return parseEnv(schema, source);
}
