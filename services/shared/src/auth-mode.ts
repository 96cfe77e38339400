import type { Cluster, Redis } from "ioredis";
import { DeploymentConflict, untilRedisAnswers } from "./deployment-setting.js";
import { AUTH_MODE_KEY } from "./keys.js";
import type { Logger } from "./logger.js";

export { AUTH_MODE_KEY } from "./keys.js";

/** `AUTH_MODE` of the chat pods. */
export type AuthMode = "open" | "jwt";

/*
 * The deployment's auth mode is in Redis (`AUTH_MODE_KEY`), pinned like the bus mode (bus-mode.ts):
 * the first chat pod writes it, every later one reads it. One pod started without `AUTH_MODE=jwt`
 * on a jwt deployment's Redis would otherwise run open, and anyone connecting to it could read
 * another user's notifications and post as them.
 */

/** The configured mode contradicts the deployment's. */
export class AuthModeConflict extends DeploymentConflict {}

type RedisLike = Redis | Cluster;

/** The deployment's mode after pinning `mode` if none is; throws `AuthModeConflict` when they differ. */
export async function resolveAuthMode(redis: RedisLike, mode: AuthMode): Promise<AuthMode> {
  await redis.set(AUTH_MODE_KEY, mode, "NX");
  const stored = await redis.get(AUTH_MODE_KEY);
  if (stored === mode) return mode;
  throw new AuthModeConflict(
    `AUTH_MODE=${mode}, but this deployment runs with AUTH_MODE=${JSON.stringify(stored?.slice(0, 40))} (Redis key ${AUTH_MODE_KEY}): ` +
      `every chat pod must use one mode. Set AUTH_MODE=${stored === "jwt" ? "jwt and its JWT_* keys" : stored}, or switch the whole ` +
      `deployment: stop every chat pod, redis-cli DEL ${AUTH_MODE_KEY}, start them with the new mode`,
  );
}

/**
 * `resolveAuthMode` at start: waits while Redis is unreachable, throws `AuthModeConflict` on a
 * conflict (the caller ends the process: fail closed, no pod serves in another mode than the
 * deployment's). Writes the mode back after every reconnect, so a Redis that lost its data still
 * holds it for pods started later.
 */
export async function settleAuthMode(redis: RedisLike, mode: AuthMode, log: Logger): Promise<void> {
  await untilRedisAnswers("the deployment's auth mode", () => resolveAuthMode(redis, mode), log);
  redis.on("ready", () => {
    redis.set(AUTH_MODE_KEY, mode, "NX").then(
      () => undefined,
      (err: Error) => log.debug({ err: err.message }, "could not write the auth mode back"),
    );
  });
}
