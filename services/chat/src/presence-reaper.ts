import { mgetBySlot, type Logger, type RedisClient, type User } from "@chat/shared";

/** The Redis keys presence keeps, by what they hold. */
export interface PresenceKeys {
  /** A room's hash: one field `<instance>|<user id>` per user and pod instance. */
  room: (room: string) => string;
  /** A pod instance's liveness key, renewed by its heartbeat. */
  instance: (id: string) => string;
  /** The set of every pod instance that has registered and not yet left or been reaped. */
  instances: string;
  /** The set of rooms a pod instance has (had) local members in. */
  roomsOf: (id: string) => string;
}

export interface ReapOptions {
  redis: RedisClient;
  keys: PresenceKeys;
  /** The instances the registry lists (this pod's own id among them is skipped). */
  registered: string[];
  self: string;
  /** Who is in a room on the pods that live. */
  present: (room: string) => Promise<Map<string, unknown>>;
  /** A user of a dead pod is gone from `room`: tell the room. */
  onLeave: (room: string, user: User) => void;
  log: Logger;
}

/**
 * Finds the registered pod instances whose liveness key has expired (a pod SIGKILLed, say) and,
 * for each one this pod claims, removes its entries from every room it was in and announces a
 * `leave` for each of its users not still present from another pod.
 *
 * The claim is `SREM` from the registry: Redis answers 1 to exactly one caller, so every leave is
 * announced once, cluster-wide, however many pods run this at the same moment. It costs one MGET
 * per heartbeat while nobody died (on a Redis Cluster, one per slot the liveness keys fall in).
 */
export async function reapDeadInstances({ redis, keys, registered, self, present, onLeave, log }: ReapOptions): Promise<number> {
  const others = registered.filter((id) => id !== self);
  if (others.length === 0) return 0;
  const alive = await mgetBySlot(
    redis,
    others.map((id) => keys.instance(id)),
  );
  let reaped = 0;
  for (const [i, dead] of others.entries()) {
    if (alive[i] !== null) continue;
    if ((await redis.srem(keys.instances, dead)) !== 1) continue;
    reaped++;
    const rooms = await redis.smembers(keys.roomsOf(dead));
    let leaves = 0;
    for (const room of rooms) {
      const fields = await redis.hgetall(keys.room(room));
      const gone = Object.entries(fields).filter(([field]) => field.startsWith(`${dead}|`));
      if (gone.length === 0) continue;
      await redis.hdel(keys.room(room), ...gone.map(([field]) => field));
      const still = await present(room);
      for (const [field, value] of gone) {
        const user = parseUser(value);
        if (!user) {
          log.debug({ field }, "presence: malformed entry dropped");
          continue;
        }
        if (still.has(user.id)) continue;
        onLeave(room, user);
        leaves++;
      }
    }
    await redis.del(keys.roomsOf(dead));
    log.info({ instance: dead, rooms: rooms.length, leaves }, "presence: a pod died; announced the leaves of its users");
  }
  return reaped;
}

/** A user stored in a presence hash, or undefined when the entry is malformed (never thrown). */
export function parseUser(value: string): User | undefined {
  try {
    const user = JSON.parse(value) as Partial<User>;
    if (typeof user.id === "string" && typeof user.name === "string") return { id: user.id, name: user.name };
  } catch {
    // fall through: a malformed entry is skipped, never thrown
  }
  return undefined;
}
