import calculateSlot from "cluster-key-slot";
import type { Cluster, Redis } from "ioredis";

/** A connection to one server (or a Sentinel's master), or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** One command for `execBySlot`: its name, then its key, then the rest of its arguments. */
export type SlotCommand = [name: string, key: string, ...args: (string | number | Buffer)[]];

/** True for an ioredis `Cluster`. */
export const isRedisCluster = (redis: RedisClient): redis is Cluster => "isCluster" in redis && redis.isCluster;

/** The Redis Cluster slot of `key` (its hash tag's, when it has one). */
export const slotOf = (key: string): number => calculateSlot(key);

/**
 * Runs single-key commands in as few round trips as the server allows, and gives back their
 * replies in order (an error reply rejects, as ioredis' `exec` results would be read). On one
 * server: one pipeline, or one MULTI with `atomic`. On a Redis Cluster, where a pipeline or a
 * transaction may only touch one slot: one pipeline (or MULTI) per slot, all sent at once, so the
 * commands of one slot stay in order and atomic together, and nothing is ever CROSSSLOT.
 */
export async function execBySlot(redis: RedisClient, commands: SlotCommand[], { atomic = false }: { atomic?: boolean } = {}): Promise<unknown[]> {
  if (commands.length === 0) return [];
  const groups = new Map<number, number[]>();
  if (isRedisCluster(redis)) {
    for (const [i, [, key]] of commands.entries()) {
      const slot = slotOf(key);
      const group = groups.get(slot);
      if (group) group.push(i);
      else groups.set(slot, [i]);
    }
  } else {
    groups.set(
      0,
      commands.map((_, i) => i),
    );
  }
  const replies: unknown[] = new Array(commands.length);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const batch = indexes.map((i) => commands[i]!);
      const results = (await (atomic ? redis.multi(batch) : redis.pipeline(batch)).exec()) ?? [];
      for (const [j, i] of indexes.entries()) {
        const [err, value] = results[j] ?? [new Error("no reply"), undefined];
        if (err) throw err;
        replies[i] = value;
      }
    }),
  );
  return replies;
}

/** `MGET` of `keys`: one command on one server; on a cluster, one per slot, sent at once. Values in the order of `keys`. */
export async function mgetBySlot(redis: RedisClient, keys: string[]): Promise<(string | null)[]> {
  if (keys.length === 0) return [];
  if (!isRedisCluster(redis)) return redis.mget(keys);
  return (await execBySlot(
    redis,
    keys.map((key): SlotCommand => ["get", key]),
  )) as (string | null)[];
}
