import type { Cluster, Redis } from "ioredis";
import { BUS_MODES, type BusMode } from "./bus.js";
import { DeploymentConflict, untilRedisAnswers } from "./deployment-setting.js";
import { BUS_MODE_KEY } from "./keys.js";
import type { Logger } from "./logger.js";

export { BUS_MODE_KEY } from "./keys.js";

/** `BUS_MODE`: a mode, or `auto` to follow the deployment (and pick sharded on Redis 7). */
export type BusModeSetting = "auto" | BusMode;

/*
 * The deployment's mode is in Redis itself (`BUS_MODE_KEY`): the first process to start writes it,
 * every later one reads it. Chat pods and notifiers therefore agree even when their `BUS_MODE`
 * settings differ (`auto` beside an explicit mode), and an explicit mode that contradicts it stops
 * the process instead of silently losing messages.
 */

/** The configured mode contradicts the deployment's: starting would lose messages. */
export class BusModeConflict extends DeploymentConflict {}

type RedisLike = Redis | Cluster;

/**
 * True when the server has sharded pub/sub: `COMMAND INFO` knows `SPUBLISH`. Where a managed
 * service refuses `COMMAND` (a Redis error, not a lost connection), the version decides (7+).
 */
export async function supportsShardedPubSub(redis: RedisLike): Promise<boolean> {
  try {
    const [info] = (await redis.call("COMMAND", "INFO", "SPUBLISH")) as unknown[];
    return Array.isArray(info);
  } catch (err) {
    if ((err as Error).name !== "ReplyError") throw err;
    const version = /redis_version:(\d+)/.exec(await redis.info("server"))?.[1];
    return Number(version) >= 7;
  }
}

function parseStored(value: string | null): BusMode | undefined {
  if (value === null) return undefined;
  if ((BUS_MODES as readonly string[]).includes(value)) return value as BusMode;
  throw new BusModeConflict(`${BUS_MODE_KEY} holds ${JSON.stringify(value.slice(0, 40))}, which is not classic or sharded: fix or delete it`);
}

/**
 * The mode to run in: the deployment's (from `BUS_MODE_KEY`) when it has one; otherwise the
 * configured one, or with `auto` sharded when the server supports it and classic when not, which
 * then becomes the deployment's. Throws `BusModeConflict` when the setting contradicts it.
 */
/** The README heading that explains the modes and how to switch (a test checks it exists). */
const README_BUS_MODE_HEADING = "Message bus: classic or sharded";

export async function resolveBusMode(redis: RedisLike, setting: BusModeSetting): Promise<BusMode> {
  let stored = parseStored(await redis.get(BUS_MODE_KEY));
  if (!stored) {
    const sharded = await supportsShardedPubSub(redis);
    const wanted = setting === "auto" ? (sharded ? "sharded" : "classic") : setting;
    if (wanted === "sharded" && !sharded) throw new BusModeConflict("BUS_MODE=sharded needs Redis 7 or newer (SPUBLISH); use classic or auto");
    await redis.set(BUS_MODE_KEY, wanted, "NX");
    // Another process may have won the race with another mode: what Redis holds now decides.
    stored = parseStored(await redis.get(BUS_MODE_KEY)) ?? wanted;
  }
  if (setting !== "auto" && setting !== stored) {
    throw new BusModeConflict(
      `BUS_MODE=${setting}, but this deployment runs in ${stored} mode (Redis key ${BUS_MODE_KEY}): every chat pod and ` +
        `notifier must use one mode. Set BUS_MODE=${stored} or auto, or switch the whole deployment (README, "${README_BUS_MODE_HEADING}")`,
    );
  }
  return stored;
}

/**
 * `resolveBusMode` for a process's start: waits for Redis while it is unreachable (logging once),
 * and throws `BusModeConflict` on a conflict, which no retry would fix (the caller ends the
 * process). Afterwards it writes the mode back after every reconnect, so a Redis that lost its
 * data (no persistence) still tells processes started later which mode the running ones use.
 */
export async function settleBusMode(redis: RedisLike, setting: BusModeSetting, log: Logger): Promise<BusMode> {
  const mode = await untilRedisAnswers("the message bus mode", () => resolveBusMode(redis, setting), log);
  log.info({ busMode: mode, setting }, `message bus: ${mode} pub/sub`);
  redis.on("ready", () => void reassert(redis, mode, log));
  return mode;
}

async function reassert(redis: RedisLike, mode: BusMode, log: Logger): Promise<void> {
  try {
    await redis.set(BUS_MODE_KEY, mode, "NX");
    const stored = await redis.get(BUS_MODE_KEY);
    if (stored !== mode)
      log.error({ busMode: mode, stored }, `${BUS_MODE_KEY} says ${stored}, but this process runs in ${mode} mode: restart the processes of one of the two`);
  } catch (err) {
    log.debug({ err: (err as Error).message }, "could not write the bus mode back");
  }
}
