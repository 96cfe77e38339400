import type { Redis } from "ioredis";
import { luaScript, pairsOf, presenceKeys, type Logger, type User } from "@chat/shared";
import { parseUser, reapDeadInstances } from "./presence-reaper.js";

export interface PresenceOptions {
  /**
   * Seconds after which the entries of a pod that died without cleaning up stop being listed.
   * Each pod renews a liveness key at a third of this period.
   * @default 30
   */
  ttlSeconds?: number;
  /**
   * Prefix of every Redis key presence uses.
   * @default "chat"
   */
  prefix?: string;
  /**
   * A user of a pod that died (its liveness key expired) is no longer in `room` on any live pod.
   * Called on one pod only, once per user and room, cluster-wide.
   * @default nothing
   */
  onExpired?: (room: string, user: User) => void;
}

/** Who is in which room, across every pod. */
export interface Presence {
  /** A local socket of `user` joined `room`. True when it is the user's first here. */
  add(room: string, user: User): Promise<boolean>;
  /** A local socket of `user` left `room` (or disconnected). True when it was the user's last here. */
  remove(room: string, user: User): Promise<boolean>;
  /** Every user in `room` on any live pod, with the number of pods they are connected to. */
  roster(room: string): Promise<Map<string, RosterEntry>>;
  /** Every user in `room` on any live pod, sorted by name. */
  members(room: string): Promise<User[]>;
  /** Rooms with at least one local member. */
  localRooms(): number;
  /** Counts a new connection of `userId`; resolves the user's connections on all live pods. */
  connect(userId: string): Promise<number>;
  /** Counts a connection of `userId` gone. */
  disconnect(userId: string): Promise<void>;
  close(): Promise<void>;
}

export interface RosterEntry {
  user: User;
  /** How many pod instances the user is connected to the room from. */
  instances: number;
}

/** A user's connection counts per pod live a day past the last connect (pods clean up their own). */
const CONNECTIONS_TTL_SECONDS = 86_400;
/** A pod's room list outlives it by a day at most, should no pod ever be left to reap it. */
const REGISTRY_TTL_SECONDS = 86_400;

/**
 * Counts a connection in the user's hash and returns this pod's count followed by the other pods'
 * non-zero counts as `[here, id, n, id, n, ...]`: one round trip instead of a MULTI and its replies.
 * It touches only KEYS[1], so it runs on a Redis Cluster too.
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

interface LocalEntry {
  user: User;
  sockets: number;
}

/**
 * Presence with a per-pod liveness key: room hashes hold one field per (pod instance, user), and a
 * field counts only while its instance's key lives. A pod that is SIGKILLed stops renewing its
 * key, so its members vanish from every list within `ttlSeconds` without anyone cleaning up.
 * Without Redis it is the local map alone.
 */
export function createPresence(
  redis: Redis | undefined,
  instanceId: string,
  log: Logger,
  { ttlSeconds = 30, prefix = "chat", onExpired = () => undefined }: PresenceOptions = {},
): Presence {
  const local = new Map<string, Map<string, LocalEntry>>();
  const keys = presenceKeys(prefix);
  const roomKey = keys.room;
  const instanceKey = keys.instance;
  const myRooms = keys.roomsOf(instanceId);
  const connectionsKey = keys.connections;
  const localConnections = new Map<string, number>();
  const field = (userId: string) => `${instanceId}|${userId}`;
  const roomTtl = ttlSeconds * 2;

  const report = (what: string) => (err: Error) => log.warn({ err: err.message }, `presence: ${what} failed`);

  /** Writes every local entry again: after a reconnect Redis may have lost them. */
  function resync(): void {
    if (!redis) return;
    const pipeline = redis.pipeline().set(instanceKey(instanceId), "1", "EX", ttlSeconds).sadd(keys.instances, instanceId);
    for (const [room, users] of local) {
      for (const { user } of users.values()) pipeline.hset(roomKey(room), field(user.id), JSON.stringify(user));
      pipeline.expire(roomKey(room), roomTtl).sadd(myRooms, room);
    }
    pipeline.expire(myRooms, REGISTRY_TTL_SECONDS);
    for (const [userId, n] of localConnections) pipeline.hset(connectionsKey(userId), instanceId, n).expire(connectionsKey(userId), CONNECTIONS_TTL_SECONDS);
    pipeline.exec().catch(report("resync"));
  }

  /**
   * Renews this pod's liveness and its rooms, and looks for pods that died: one pipeline, plus one
   * MGET of the other pods' liveness keys.
   */
  async function heartbeat(): Promise<void> {
    if (redis?.status !== "ready") return;
    const pipeline = redis.pipeline().set(instanceKey(instanceId), "1", "EX", ttlSeconds).sadd(keys.instances, instanceId);
    for (const room of local.keys()) pipeline.expire(roomKey(room), roomTtl);
    const replies = (await pipeline.smembers(keys.instances).exec()) ?? [];
    // Back in the registry though never gone: another pod took this one for dead (a long stall,
    // say) and removed its entries, or Redis lost them. Write them all again.
    if (replies[1]?.[1] === 1) resync();
    const registered = replies.at(-1)?.[1];
    if (!Array.isArray(registered)) return;
    await reapDeadInstances({
      redis,
      keys,
      registered: registered as string[],
      self: instanceId,
      present: roster,
      onLeave: onExpired,
      log,
    });
  }

  let timer: NodeJS.Timeout | undefined;
  if (redis) {
    redis.on("ready", resync);
    if (redis.status === "ready") resync();
    timer = setInterval(() => void heartbeat().catch(report("heartbeat")), (ttlSeconds * 1000) / 3);
    timer.unref();
  }

  /** The instances among `ids` whose liveness key is there (this one always is). */
  async function liveInstances(ids: string[]): Promise<Set<string>> {
    if (!redis || ids.length === 0) return new Set(ids);
    const alive = await redis.mget(ids.map(instanceKey));
    return new Set(ids.filter((id, i) => alive[i] !== null || id === instanceId));
  }

  async function roster(room: string): Promise<Map<string, RosterEntry>> {
    const byId = new Map<string, RosterEntry>();
    if (!redis) {
      for (const { user } of local.get(room)?.values() ?? []) byId.set(user.id, { user, instances: 1 });
      return byId;
    }
    const fields = await redis.hgetall(roomKey(room));
    const entries = Object.entries(fields).map(([key, value]) => ({ key, instance: key.split("|", 1)[0]!, value }));
    // This pod is alive by definition, even if Redis restarted and lost its key a moment ago.
    const live = await liveInstances([...new Set(entries.map((e) => e.instance))]);
    // A dead pod's entries are skipped, not deleted: the heartbeat that claims the dead pod removes
    // them and announces who left (presence-reaper.ts), which it could not do once they are gone.
    for (const { key, instance, value } of entries) {
      if (!live.has(instance)) continue;
      const user = parseUser(value);
      if (!user) {
        log.debug({ key }, "presence: malformed entry ignored");
        continue;
      }
      const known = byId.get(user.id);
      if (known) known.instances++;
      else byId.set(user.id, { user, instances: 1 });
    }
    return byId;
  }

  return {
    async add(room, user) {
      let users = local.get(room);
      if (!users) local.set(room, (users = new Map<string, LocalEntry>()));
      const entry = users.get(user.id);
      if (entry) {
        entry.sockets++;
        return false;
      }
      const firstHere = users.size === 0;
      users.set(user.id, { user, sockets: 1 });
      const multi = redis?.multi().hset(roomKey(room), field(user.id), JSON.stringify(user)).expire(roomKey(room), roomTtl);
      // The rooms this pod is in: what another pod reads to announce the leaves if this one dies.
      if (firstHere) multi?.sadd(myRooms, room).expire(myRooms, REGISTRY_TTL_SECONDS);
      await multi?.exec();
      return true;
    },

    async remove(room, user) {
      const users = local.get(room);
      const entry = users?.get(user.id);
      if (!users || !entry) return false;
      if (--entry.sockets > 0) return false;
      users.delete(user.id);
      if (users.size === 0) local.delete(room);
      if (users.size === 0) await redis?.multi().hdel(roomKey(room), field(user.id)).srem(myRooms, room).exec();
      else await redis?.hdel(roomKey(room), field(user.id));
      return true;
    },

    members: async (room) => usersOf(await roster(room)),

    roster,

    localRooms: () => local.size,

    async connect(userId) {
      const mine = (localConnections.get(userId) ?? 0) + 1;
      localConnections.set(userId, mine);
      if (!redis) return mine;
      const [here, ...others] = await connectScript.run(redis, connectionsKey(userId), instanceId, CONNECTIONS_TTL_SECONDS);
      // Usually the user is on this pod only: one round trip. Otherwise the other pods must be alive.
      if (others.length === 0) return here;
      const counts = pairsOf(others);
      const live = await liveInstances(counts.map(([id]) => String(id)));
      return counts.reduce((sum, [id, n]) => sum + (live.has(String(id)) ? Number(n) : 0), here);
    },

    async disconnect(userId) {
      const mine = (localConnections.get(userId) ?? 1) - 1;
      if (mine > 0) localConnections.set(userId, mine);
      else localConnections.delete(userId);
      if (!redis) return;
      if (mine > 0) await redis.hincrby(connectionsKey(userId), instanceId, -1);
      else await redis.hdel(connectionsKey(userId), instanceId);
    },

    async close() {
      clearInterval(timer);
      if (!redis) return;
      redis.off("ready", resync);
      if (redis.status !== "ready") return;
      const pipeline = redis.pipeline();
      for (const [room, users] of local) {
        for (const userId of users.keys()) pipeline.hdel(roomKey(room), field(userId));
      }
      for (const userId of localConnections.keys()) pipeline.hdel(connectionsKey(userId), instanceId);
      await pipeline.del(instanceKey(instanceId)).srem(keys.instances, instanceId).del(myRooms).exec();
      local.clear();
      localConnections.clear();
    },
  };
}

/** The users of a roster, sorted by name. */
export function usersOf(roster: Map<string, RosterEntry>): User[] {
  return [...roster.values()].map((entry) => entry.user).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
