import { z } from "zod";
import { env, parseEnv, redisTopologyCheck, redisTopologyEnv } from "@chat/shared";
import { webhookEnv, webhookSecretRequired } from "./webhook-config.js";

/** Shorter keys are guessable; 16 characters is the floor, a random 32+ is what we hand out. */
const MIN_KEY_LENGTH = 16;

const apiKeys = z
  .string()
  .transform((value) =>
    value
      .split(",")
      .map((key) => key.trim())
      .filter((key) => key !== ""),
  )
  .pipe(z.array(z.string().min(MIN_KEY_LENGTH, `every key must be at least ${MIN_KEY_LENGTH} characters`)).min(1, "must hold at least one key"));

/**
 * The notifier's configuration: the only place that reads `process.env`. Every variable is
 * documented in docs/notifier.md.
 */
const schema = z.object({
  /** Port of the HTTP API. 0 picks a free port (tests use it). */
  PORT: env.port(3001),
  /** Address to listen on. */
  HOST: z.string().default("0.0.0.0"),
  /**
   * Required, or REDIS_SENTINELS, or REDIS_CLUSTER_NODES: the notifier only ever talks to chat pods
   * through Redis, it has no embedded mode.
   */
  REDIS_URL: env.redisUrl(),
  /** Or Redis through Sentinel, or a Redis Cluster, and the REDIS_WAIT_* acks: the same rules for both services (shared redis-config.ts). */
  // REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, REDIS_CLUSTER_NODES, REDIS_TLS,
  // REDIS_WAIT_REPLICAS, REDIS_WAIT_TIMEOUT_MS, REDIS_PASSWORD, REDIS_USERNAME: one definition for both
  // services (shared redis-config.ts), named here for the chart's env contract (scripts/lib/env-contract.mjs).
  ...redisTopologyEnv,
  /** A PEM CA bundle for `rediss://`. */
  REDIS_TLS_CA_FILE: env.readableFile(),
  /** `auto`, `classic` or `sharded`: how events reach the chat pods; the chat reads the same. */
  BUS_MODE: env.busMode(),
  LOG_LEVEL: env.logLevel(),
  POD_NAME: env.podName(),
  /** API calls per key per second (0: no limit). */
  RATE_LIMIT_NOTIFIER_PER_SECOND: env.nonNegativeInt(200, 1_000_000),
  /** Comma-separated bearer keys; several at once so a key can be rotated without downtime. */
  NOTIFIER_API_KEYS: z.string({ error: "is required: comma-separated API keys of 16+ characters" }).pipe(apiKeys),
  /** The Redis Stream other services XADD events to. */
  NOTIFIER_STREAM: z.string().min(1).max(200).default("notifier:events"),
  /** The consumer group every replica joins; each replica is one consumer of it. */
  NOTIFIER_GROUP: z.string().min(1).max(200).default("notifier"),
  /** Largest `data`, in bytes of compact JSON. */
  NOTIFIER_MAX_DATA_BYTES: env.positiveInt(64 * 1024, 16 * 1024 * 1024),
  /**
   * Deepest nesting of arrays and objects in `data`. Socket.IO's msgpack encoder recurses, so a
   * few thousand levels would overflow it; far fewer than that is any real payload.
   */
  NOTIFIER_MAX_DATA_DEPTH: env.positiveInt(32, 100_000),
  /** How long an event id is remembered, so a retry or redelivery with it is dropped. */
  NOTIFIER_DEDUPE_WINDOW_SECONDS: env.positiveInt(86_400, 30 * 86_400),
  /** A stream entry pending this long (its consumer presumably dead) is claimed by another replica. */
  NOTIFIER_CLAIM_IDLE_MS: env.positiveInt(30_000, 24 * 3_600_000),
  /** Stream entries read (or claimed) per round trip. */
  NOTIFIER_BATCH_SIZE: env.positiveInt(100, 10_000),
  /**
   * Bytes of entries read (or claimed) per round trip: a batch stops at the entry that passes it,
   * and a value longer than `NOTIFIER_MAX_DATA_BYTES` is cut short in Redis before it is sent.
   */
  NOTIFIER_BATCH_BYTES: env.positiveInt(1024 * 1024, 256 * 1024 * 1024),
  /**
   * Longest wait between two reads of a stream that had nothing new (the wait starts at 5 ms and
   * doubles): the most an idle replica takes to see a new entry. Reads are polled, not blocking,
   * so that their replies stay bounded by bytes.
   */
  NOTIFIER_POLL_MS: env.positiveInt(200, 5_000),
  /**
   * Ignored since reads are polled. Still accepted so that an environment (or chart) that sets it
   * keeps starting during the upgrade; remove it.
   */
  NOTIFIER_BLOCK_MS: env.positiveInt(5_000, 60_000),
  /** The rooms' log caps: set them as on the chat pods, since both append to the same logs. */
  HISTORY_MAX_ENTRIES: env.positiveInt(1000, 1_000_000),
  HISTORY_MAX_AGE_SECONDS: env.nonNegativeInt(604_800),
  /** Port of `/livez`, `/readyz` and `/metrics`. */
  PROBE_PORT: env.port(9100),
  /** Seconds between failing readiness on SIGTERM and stopping. */
  SHUTDOWN_DELAY_SECONDS: env.nonNegativeInt(5, 300),
  /** Webhooks (docs/server-api.md#webhooks), validated in webhook-config.ts; named here, where the chart's env contract looks. */
  WEBHOOK_URLS: webhookEnv.WEBHOOK_URLS,
  WEBHOOK_SECRET: webhookEnv.WEBHOOK_SECRET,
  WEBHOOK_EVENTS: webhookEnv.WEBHOOK_EVENTS,
  WEBHOOK_TIMEOUT_MS: webhookEnv.WEBHOOK_TIMEOUT_MS,
  WEBHOOK_MAX_ATTEMPTS: webhookEnv.WEBHOOK_MAX_ATTEMPTS,
  WEBHOOK_RETRY_BASE_MS: webhookEnv.WEBHOOK_RETRY_BASE_MS,
  WEBHOOK_RETRY_MAX_MS: webhookEnv.WEBHOOK_RETRY_MAX_MS,
  WEBHOOK_BATCH_SIZE: webhookEnv.WEBHOOK_BATCH_SIZE,
  WEBHOOK_BATCH_MS: webhookEnv.WEBHOOK_BATCH_MS,
});

export type NotifierConfig = z.infer<typeof schema>;

export function loadConfig(source: NodeJS.ProcessEnv = process.env): NotifierConfig {
  return parseEnv(schema, source, [redisTopologyCheck({ required: true, service: "notifier" }), webhookSecretRequired]);
}
