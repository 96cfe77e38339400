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
});

export type ChatConfig = z.infer<typeof schema>;

export function loadConfig(source: NodeJS.ProcessEnv = process.env): ChatConfig {
  return parseEnv(schema, source);
}
