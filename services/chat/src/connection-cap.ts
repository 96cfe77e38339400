import { execBySlot, luaScript, pairsOf, presenceKeys, type Logger, type RedisClient, type SlotCommand } from "@chat/shared";

/**
 * Each user's connections across every live pod, for `MAX_CONNECTIONS_PER_USER`: a hash per user
 * with one field per pod instance. A dead pod's counts stop counting with its liveness key
 * (`liveInstances`, from presence), without anyone cleaning up.
 */
export interface ConnectionCounts {
  /** Counts a new connection of `userId`; resolves the user's connections on all live pods. */
  connect(userId: string): Promise<number>;
  /** Counts a connection of `userId` gone. */
  disconnect(userId: string): Promise<void>;
  /** Writes this pod's counts again: after a reconnect Redis may have lost them. */
  resync(): void;
  /** Removes this pod's counts (at shutdown). */
  close(): Promise<void>;
}

export interface ConnectionCountOptions {
  /**
   * Prefix of every Redis key.
   * @default "chat"
   */
  prefix?: string;
  /** The pod instances among `ids` that are alive (presence's liveness keys). */
  liveInstances(ids: string[]): Promise<Set<string>>;
}

/** A user's connection counts per pod live a day past the last connect (pods clean up their own). */
const CONNECTIONS_TTL_SECONDS = 86_400;

/**
 * Counts a connection in the user's hash and returns this pod's count followed by the other pods'
 * non-zero counts as `[here, id, n, id, n, ...]`: one round trip instead of a MULTI and its replies.
 * It touches only KEYS[1], so it runs on a Redis Cluster too. Run by the shared `luaScript`
 * (plain EVALSHA: this runs on every handshake, see lua.ts for why not `defineCommand`).
 */
const connectScript = luaScript<[number, ...(string | number)[]]>(
  `
local here = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
local out = { here }
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] and tonumber(all[i + 1]) > 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out`,
  1,
);

/** The sum of the counts in `[id, n, id, n, ...]` whose pod is in `live`. */
export function liveTotal(others: (string | number)[], live: Set<string>): number {
  return pairsOf(others).reduce((sum, [id, n]) => sum + (live.has(String(id)) ? Number(n) : 0), 0);
}

/** Per-user connection counts in Redis (across pods), or in this pod's memory without Redis. */
export function createConnectionCounts(redis: RedisClient | undefined, instanceId: string, log: Logger, options: ConnectionCountOptions): ConnectionCounts {
  const prefix = options.prefix ?? "chat";
  const key = presenceKeys(prefix).connections;
  const local = new Map<string, number>();

  function resync(): void {
    if (!redis || local.size === 0) return;
    // One pipeline; on a Redis Cluster, one per slot (each user's hash is a slot of its own).
    const commands = [...local].flatMap(([userId, n]): SlotCommand[] => [
      ["hset", key(userId), instanceId, n],
      ["expire", key(userId), CONNECTIONS_TTL_SECONDS],
    ]);
    execBySlot(redis, commands).catch((err: Error) => log.warn({ err: err.message }, "connection counts: resync failed"));
  }
  redis?.on("ready", resync);

  return {
    async connect(userId) {
      const mine = (local.get(userId) ?? 0) + 1;
      local.set(userId, mine);
      if (!redis) return mine;
      const [here, ...others] = await connectScript.run(redis, key(userId), instanceId, CONNECTIONS_TTL_SECONDS);
      // Usually the user is on this pod only: one round trip. Otherwise the other pods must be alive.
      if (others.length === 0) return here;
      const ids = pairsOf(others).map(([id]) => String(id));
      return here + liveTotal(others, await options.liveInstances(ids));
    },

    async disconnect(userId) {
      const mine = (local.get(userId) ?? 1) - 1;
      if (mine > 0) local.set(userId, mine);
      else local.delete(userId);
      if (!redis) return;
      if (mine > 0) await redis.hincrby(key(userId), instanceId, -1);
      else await redis.hdel(key(userId), instanceId);
    },

    resync,

    async close() {
      redis?.off("ready", resync);
      if (redis?.status === "ready" && local.size > 0) {
        await execBySlot(
          redis,
          [...local.keys()].map((userId): SlotCommand => ["hdel", key(userId), instanceId]),
        );
      }
      local.clear();
    },
  };
}
