import { execBySlot, mgetBySlot, presenceKeys, type Logger, type RedisClient, type SlotCommand, type User } from "@chat/shared";
import { parseUser, reapDeadInstances, type PresenceKeys } from "./presence-reaper.js";
import { RoomViews, usersOf, type RoomView, type RosterEntry } from "./room-views.js";

export { usersOf, type RoomView, type RosterEntry };

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
   * Called on one pod only, once per user and room, cluster-wide. `announce`: the room is small
   * enough for its leaves to be announced (`announceMaxMembers`).
   * @default nothing
   */
  onExpired?: (room: string, user: User, announce: boolean) => void;
  /**
   * Rooms with more members than this do not announce joins and leaves, list this many members in
   * a join ack, and share one roster read per second per pod among their joins and leaves
   * (room-views.ts). 0: every room announces.
   * @default 200
   */
  announceMaxMembers?: number;
  /**
   * Called each time presence writes its entries again (Redis may have lost them): what else this
   * pod keeps in Redis (its connection counts) is written again too.
   * @default nothing
   */
  onResync?: () => void;
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
  /** `room` as a join or a leave sees it: exact when small, a shared snapshot when big (room-views.ts). */
  view(room: string): Promise<RoomView>;
  /** Rooms with at least one local member. */
  localRooms(): number;
  /** The pod instances among `ids` whose liveness key is there (this one always is). */
  liveInstances(ids: string[]): Promise<Set<string>>;
  close(): Promise<void>;
}

/** A pod's room list outlives it by a day at most, should no pod ever be left to reap it. */
const REGISTRY_TTL_SECONDS = 86_400;

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
export function createPresence(redis: RedisClient | undefined, instanceId: string, log: Logger, options: PresenceOptions = {}): Presence {
  return new PodPresence(redis, instanceId, log, options);
}

class PodPresence implements Presence {
  /** room -> user id -> the user and how many of their sockets on this pod are in the room. */
  private readonly local = new Map<string, Map<string, LocalEntry>>();
  private readonly keys: PresenceKeys;
  /** The set of rooms this pod has local members in. */
  private readonly myRooms: string;
  private readonly ttlSeconds: number;
  private readonly roomTtl: number;
  private readonly onExpired: (room: string, user: User, announce: boolean) => void;
  private readonly views: RoomViews;
  private readonly onResync: () => void;
  private readonly timer?: NodeJS.Timeout;
  /** Bound once: it is a `ready` listener, removed again on close. */
  private readonly resync = () => this.writeAll();

  constructor(
    private readonly redis: RedisClient | undefined,
    private readonly instanceId: string,
    private readonly log: Logger,
    { ttlSeconds = 30, prefix = "chat", onExpired = () => undefined, onResync = () => undefined, announceMaxMembers = 200 }: PresenceOptions,
  ) {
    this.views = new RoomViews((room) => this.roster(room), { announceMaxMembers });
    this.keys = presenceKeys(prefix);
    this.myRooms = this.keys.roomsOf(instanceId);
    this.ttlSeconds = ttlSeconds;
    this.roomTtl = ttlSeconds * 2;
    this.onExpired = onExpired;
    this.onResync = onResync;
    if (!redis) return;
    redis.on("ready", this.resync);
    if (redis.status === "ready") this.writeAll();
    this.timer = setInterval(() => void this.heartbeat().catch(this.report("heartbeat")), (ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  private field(userId: string): string {
    return `${this.instanceId}|${userId}`;
  }

  private report(what: string) {
    return (err: Error) => this.log.warn({ err: err.message }, `presence: ${what} failed`);
  }

  /** Writes every local entry again: after a reconnect Redis may have lost them. */
  private writeAll(): void {
    const { redis, keys } = this;
    if (!redis) return;
    const commands: SlotCommand[] = [...this.register()];
    for (const [room, users] of this.local) {
      for (const { user } of users.values()) commands.push(["hset", keys.room(room), this.field(user.id), JSON.stringify(user)]);
      commands.push(["expire", keys.room(room), this.roomTtl], ["sadd", this.myRooms, room]);
    }
    commands.push(["expire", this.myRooms, REGISTRY_TTL_SECONDS]);
    execBySlot(redis, commands).catch(this.report("resync"));
  }

  /** This pod's liveness key and its place in the registry (on a cluster, two slots: never one MULTI). */
  private register(): SlotCommand[] {
    return [
      ["set", this.keys.instance(this.instanceId), "1", "EX", this.ttlSeconds],
      ["sadd", this.keys.instances, this.instanceId],
    ];
  }

  /**
   * Renews this pod's liveness and its rooms, and looks for pods that died: one pipeline, plus one
   * MGET of the other pods' liveness keys (on a Redis Cluster, one of each per slot, sent at once).
   */
  private async heartbeat(): Promise<void> {
    const { redis, keys, instanceId } = this;
    if (redis?.status !== "ready") return;
    const commands = this.register();
    for (const room of this.local.keys()) commands.push(["expire", keys.room(room), this.roomTtl]);
    const replies = await execBySlot(redis, [...commands, ["smembers", keys.instances]]);
    // Back in the registry though never gone: another pod took this one for dead (a long stall,
    // say) and removed its entries, or Redis lost them. Write them all again.
    if (replies[1] === 1) {
      this.writeAll();
      this.onResync();
    }
    const registered = replies.at(-1);
    if (!Array.isArray(registered)) return;
    // Who is still in each room, read exactly (not a snapshot): its size says whether leaves are announced.
    const sizes = new Map<string, number>();
    await reapDeadInstances({
      redis,
      keys,
      registered: registered as string[],
      self: instanceId,
      present: async (room) => {
        const roster = await this.roster(room);
        sizes.set(room, roster.size);
        return roster;
      },
      onLeave: (room, user) => this.onExpired(room, user, this.views.announces(sizes.get(room) ?? 0)),
      log: this.log,
    });
  }

  async liveInstances(ids: string[]): Promise<Set<string>> {
    if (!this.redis || ids.length === 0) return new Set(ids);
    const alive = await mgetBySlot(this.redis, ids.map(this.keys.instance));
    return new Set(ids.filter((id, i) => alive[i] !== null || id === this.instanceId));
  }

  async roster(room: string): Promise<Map<string, RosterEntry>> {
    const byId = new Map<string, RosterEntry>();
    if (!this.redis) {
      for (const { user } of this.local.get(room)?.values() ?? []) byId.set(user.id, { user, instances: 1 });
      return byId;
    }
    const fields = await this.redis.hgetall(this.keys.room(room));
    const entries = Object.entries(fields).map(([key, value]) => ({ key, instance: key.split("|", 1)[0]!, value }));
    // This pod is alive by definition, even if Redis restarted and lost its key a moment ago.
    const live = await this.liveInstances([...new Set(entries.map((e) => e.instance))]);
    // A dead pod's entries are skipped, not deleted: the heartbeat that claims the dead pod removes
    // them and announces who left (presence-reaper.ts), which it could not do once they are gone.
    for (const { key, instance, value } of entries) {
      if (!live.has(instance)) continue;
      const user = parseUser(value);
      if (!user) {
        this.log.debug({ key }, "presence: malformed entry ignored");
        continue;
      }
      const known = byId.get(user.id);
      if (known) known.instances++;
      else byId.set(user.id, { user, instances: 1 });
    }
    return byId;
  }

  async members(room: string): Promise<User[]> {
    return usersOf(await this.roster(room));
  }

  view(room: string): Promise<RoomView> {
    return this.views.view(room);
  }

  localRooms(): number {
    return this.local.size;
  }

  async add(room: string, user: User): Promise<boolean> {
    const { redis, keys } = this;
    let users = this.local.get(room);
    if (!users) this.local.set(room, (users = new Map<string, LocalEntry>()));
    const entry = users.get(user.id);
    if (entry) {
      entry.sockets++;
      return false;
    }
    const firstHere = users.size === 0;
    users.set(user.id, { user, sockets: 1 });
    if (!redis) return true;
    const commands: SlotCommand[] = [
      ["hset", keys.room(room), this.field(user.id), JSON.stringify(user)],
      ["expire", keys.room(room), this.roomTtl],
    ];
    // The rooms this pod is in: what another pod reads to announce the leaves if this one dies.
    if (firstHere) commands.push(["sadd", this.myRooms, room], ["expire", this.myRooms, REGISTRY_TTL_SECONDS]);
    // One MULTI on one server; on a cluster the room's hash and this pod's room set are two.
    await execBySlot(redis, commands, { atomic: true });
    return true;
  }

  async remove(room: string, user: User): Promise<boolean> {
    const users = this.local.get(room);
    const entry = users?.get(user.id);
    if (!users || !entry) return false;
    if (--entry.sockets > 0) return false;
    users.delete(user.id);
    const key = this.keys.room(room);
    if (users.size === 0) this.local.delete(room);
    if (!this.redis) return true;
    if (users.size === 0)
      await execBySlot(
        this.redis,
        [
          ["hdel", key, this.field(user.id)],
          ["srem", this.myRooms, room],
        ],
        { atomic: true },
      );
    else await this.redis.hdel(key, this.field(user.id));
    return true;
  }

  async close(): Promise<void> {
    const { redis, keys, instanceId } = this;
    clearInterval(this.timer);
    if (!redis) return;
    redis.off("ready", this.resync);
    if (redis.status !== "ready") return;
    const commands: SlotCommand[] = [];
    for (const [room, users] of this.local) {
      for (const userId of users.keys()) commands.push(["hdel", keys.room(room), this.field(userId)]);
    }
    commands.push(["del", keys.instance(instanceId)], ["srem", keys.instances, instanceId], ["del", this.myRooms]);
    await execBySlot(redis, commands);
    this.local.clear();
  }
}
