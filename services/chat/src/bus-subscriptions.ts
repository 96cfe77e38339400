import { BUS_MAIN_CHANNEL, busRoomChannel, isRedisCluster, type BusMode, type Logger, type RedisClient } from "@chat/shared";
import { quietCommands, redisSubscriptions, shardSubscribers, wrapAddAll } from "./compat/index.js";

/** The parts of the adapter's state the subscription check reads (socket.io-adapter's fields). */
export interface AdapterState {
  uid: string;
  rooms: Map<string, Set<string>>;
  sids: Map<string, Set<string>>;
}

/** What the pod is subscribed to, what it should be, and the repair after every reconnect. */
export interface Subscriptions {
  /** Channels (and patterns) Redis has confirmed on the subscriber connection. */
  actual(): string[];
  /** In sharded mode: the two channels every adapter has, and one per room with a local member. */
  expected(): string[];
  /** True once the subscriptions are known to be in place (always, in classic mode). */
  settled(): boolean;
}

const noop = () => undefined;

/**
 * Tracks the subscriber's subscriptions against the adapter's rooms. ioredis resubscribes on its
 * own after a reconnect, but a subscribe or unsubscribe the adapter sent while Redis was gone may
 * have been dropped (offline commands fail after a retry). So after every connect, once everything
 * ioredis re-sent is answered (a PING on the same connection comes back after it), the pod
 * compares Redis's view with its rooms and fixes the difference; `onSettled` follows each repair.
 */
export function trackSubscriptions(
  sub: RedisClient,
  mode: BusMode,
  adapter: () => AdapterState,
  log: Logger,
  onSettled: () => void,
  /** SSUBSCRIBEs still awaited (`watchSubscriptions`): not sent again by a repair. */
  pending: PendingSubscribes = new Map(),
): Subscriptions {
  let unreadable = false;
  const actual = (): string[] => {
    const channels = redisSubscriptions(sub);
    if (channels) return channels;
    if (!unreadable)
      log.warn("cannot read the Redis subscriber's subscriptions (ioredis internals changed): /debug/bus and the repair after a reconnect are off");
    unreadable = true;
    return [];
  };
  const expected = (): string[] => {
    if (mode === "classic") return actual();
    const { uid, rooms, sids } = adapter();
    const channels = [BUS_MAIN_CHANNEL, `${BUS_MAIN_CHANNEL}${uid}#`];
    // A socket's own room is private: the adapter gives it no channel.
    for (const room of rooms.keys()) if (!sids.has(room)) channels.push(busRoomChannel(room));
    return channels;
  };

  let settled = mode === "classic";
  let generation = 0;
  const cluster = isRedisCluster(sub);
  /**
   * `partial`: one master's subscriber connection was replaced while the cluster stayed up. Sends
   * to the other masters' rooms go on meanwhile, so the pod stays ready (the repair of the failed
   * master's channels may wait for its replica's promotion).
   */
  async function settle(partial = false): Promise<void> {
    const mine = ++generation;
    if (!partial) settled = false;
    try {
      await answered();
      if (mine !== generation) return;
      if (!unreadable) {
        await repair(new Set(actual()), new Set(expected()));
        if (mine !== generation) return;
      }
      settled ||= !partial;
      onSettled();
    } catch (err) {
      // The connection dropped again; its next `ready` starts over.
      log.debug({ err: (err as Error).message }, "bus subscription check interrupted");
    }
  }
  /** Subscribes to what is missing and leaves what is extra; resolves once Redis has answered. */
  async function repair(have: Set<string>, want: Set<string>): Promise<void> {
    // On a cluster, a failed master's channels stay missing until its replica is promoted: the
    // SSUBSCRIBE sent for them waits for it, and is not sent again on every `subscribersReady`.
    const missing = [...want].filter((channel) => !have.has(channel) && !pending.has(channel));
    const extra = [...have].filter((channel) => !want.has(channel));
    const replies = [...missing.map((channel) => sub.ssubscribe(channel).catch(noop)), ...extra.map((channel) => sub.sunsubscribe(channel).catch(noop))];
    // On one server a PING is answered after them; on a cluster each goes to its own master's connection.
    await (cluster ? Promise.all(replies) : sub.ping());
    if (missing.length || extra.length) log.info({ resubscribed: missing.length, unsubscribed: extra.length }, "bus subscriptions repaired");
  }
  /**
   * Resolves once every command sent before it on the subscriber connection is answered: a PING
   * there; on a cluster, one on each master's subscriber connection (ioredis re-sends a master's
   * subscriptions on a connection of its own when it replaces it, after a failover say).
   */
  async function answered(): Promise<void> {
    if (!cluster) return void (await sub.ping());
    const ready = (shardSubscribers(sub) ?? []).filter((connection) => connection.status === "ready");
    await Promise.all(ready.map((connection) => connection.ping().catch(noop)));
  }
  if (mode === "sharded") {
    sub.on("ready", () => void settle());
    // A cluster stays `ready` while one master fails over: ioredis replaces that master's subscriber
    // connection and resubscribes it on its own, then says `subscribersReady`. What it dropped meanwhile is repaired here.
    if (cluster) sub.on("subscribersReady", () => void settle(settled));
    sub.on("close", () => {
      generation++;
      settled = false;
    });
    if (sub.status === "ready") void settle();
  }
  return { actual, expected, settled: () => settled };
}

/** The SSUBSCRIBE replies still awaited, by channel (see `watchSubscriptions`). */
export type PendingSubscribes = Map<string, Promise<unknown>>;

/**
 * Makes `socket.join(room)` resolve once the pod's subscription to the room's channel is in
 * place: the adapter sends the SSUBSCRIBE without waiting, and a join that read the room's log
 * before Redis took it could miss a message appended in between. On one server a PING on the
 * subscriber connection is answered after every command sent before it, so once it is back the
 * channel is live. On a cluster each master has a subscriber connection of its own: the join waits
 * for the SSUBSCRIBE replies of its rooms' channels still in flight. It never rejects: if Redis is
 * gone, the join fails on its next command anyway.
 */
export function awaitableJoins(adapter: AdapterState, sub: RedisClient, pending: PendingSubscribes): void {
  if (!isRedisCluster(sub)) {
    wrapAddAll(adapter, (id, rooms) => ([...rooms].some((room) => room !== id) ? sub.ping().then(noop, noop) : undefined));
    return;
  }
  wrapAddAll(adapter, (id, rooms) => {
    const replies = [...rooms].flatMap((room) => (room === id ? [] : [pending.get(busRoomChannel(room))].filter((reply) => reply !== undefined)));
    return replies.length ? Promise.all(replies).then(noop, noop) : undefined;
  });
}

/**
 * The adapter sends its SSUBSCRIBE and SUNSUBSCRIBE without handling their promises, so one that
 * ioredis drops during an outage would surface as an unhandled rejection (an error in the logs).
 * Dropping it is expected, and `settle` repairs the subscriptions on reconnect: log it at debug.
 * Returns the SSUBSCRIBE replies in flight, by channel, for `awaitableJoins`.
 */
export function watchSubscriptions(sub: RedisClient, log: Logger): PendingSubscribes {
  const pending: PendingSubscribes = new Map();
  quietCommands(
    sub,
    ["ssubscribe", "sunsubscribe"],
    (command, err) => log.debug({ command, err: err.message }, "bus subscription change dropped; repaired on reconnect"),
    (command, args, reply) => {
      const channel = args[0];
      if (command !== "ssubscribe" || typeof channel !== "string") return;
      pending.set(channel, reply);
      const done = () => void (pending.get(channel) === reply && pending.delete(channel));
      reply.then(done, done);
    },
  );
  return pending;
}
