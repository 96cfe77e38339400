import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";
import type { Namespace, Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { BUS_KEY, BUS_MAIN_CHANNEL, busRoomChannel, scrapeCounter, type BusMode, type Logger } from "@chat/shared";
import { quietCommands, redisSubscriptions, wrapAddAll } from "./compat/index.js";

/** The Socket.IO adapter between the pods, in either bus mode, and what it is subscribed to. */
export interface ChatBus {
  mode: BusMode;
  /**
   * Redis is ready, and (in sharded mode) the subscriptions are known to be in place: after every
   * (re)connect the pod checks them against its rooms before it reports ready again.
   */
  ready(): boolean;
  /** Called each time the bus becomes ready again in sharded mode (after the check above). */
  onSettled(listener: () => void): void;
  /** What this pod is subscribed to, as Redis acknowledged it, and what it should be. */
  describe(): { mode: BusMode; ready: boolean; subscriptions: string[]; expected: string[] };
  /** Adds the bus metrics to `registry`. */
  register(registry: Registry): void;
}

interface AdapterState {
  uid: string;
  rooms: Map<string, Set<string>>;
  sids: Map<string, Set<string>>;
}

const noop = () => undefined;

/**
 * Installs the Redis adapter on `io`: `createAdapter` in classic mode, `createShardedAdapter` with
 * dynamic subscriptions in sharded mode (a pod subscribes to a room's channel when its first
 * local member joins and unsubscribes when the last one leaves).
 */
export function attachBus(io: Server, redis: { pub: Redis; sub: Redis }, { mode, log }: { mode: BusMode; log: Logger }): ChatBus {
  const { pub, sub } = redis;
  if (mode === "classic") {
    io.adapter(createAdapter(pub, sub, { key: BUS_KEY }));
  } else {
    const sharded = createShardedAdapter(pub, sub, { channelPrefix: BUS_KEY, subscriptionMode: "dynamic" });
    // A plain function, not an arrow: Socket.IO calls the factory with `new`.
    io.adapter(function shardedAdapter(nsp: Namespace) {
      const adapter = sharded(nsp);
      awaitableJoins(adapter as unknown as AdapterState, sub);
      return adapter;
    });
  }
  const adapter = () => io.of("/").adapter as unknown as AdapterState;

  /** Channels (and patterns) Redis has confirmed on the subscriber connection. */
  let unreadable = false;
  const subscriptions = (): string[] => {
    const channels = redisSubscriptions(sub);
    if (channels) return channels;
    if (!unreadable)
      log.warn("cannot read the Redis subscriber's subscriptions (ioredis internals changed): /debug/bus and the repair after a reconnect are off");
    unreadable = true;
    return [];
  };
  /** In sharded mode: the two channels every adapter has, and one per room with a local member. */
  const expected = (): string[] => {
    if (mode === "classic") return subscriptions();
    const { uid, rooms, sids } = adapter();
    const channels = [BUS_MAIN_CHANNEL, `${BUS_MAIN_CHANNEL}${uid}#`];
    // A socket's own room is private: the adapter gives it no channel.
    for (const room of rooms.keys()) if (!sids.has(room)) channels.push(busRoomChannel(room));
    return channels;
  };

  // ioredis resubscribes on its own after a reconnect, but a subscribe or unsubscribe the adapter
  // sent while Redis was gone may have been dropped (offline commands fail after a retry). So after
  // every connect, once everything ioredis re-sent is answered (a PING on the same connection
  // comes back after it), the pod compares Redis's view with its rooms and fixes the difference.
  let settled = mode === "classic";
  let generation = 0;
  const listeners: (() => void)[] = [];
  async function settle(): Promise<void> {
    const mine = ++generation;
    settled = false;
    try {
      await sub.ping();
      if (mine !== generation) return;
      if (unreadable) {
        settled = true;
        for (const listener of listeners) listener();
        return;
      }
      const have = new Set(subscriptions());
      const want = new Set(expected());
      const missing = [...want].filter((channel) => !have.has(channel));
      const extra = [...have].filter((channel) => !want.has(channel));
      for (const channel of missing) sub.ssubscribe(channel).catch(noop);
      for (const channel of extra) sub.sunsubscribe(channel).catch(noop);
      await sub.ping();
      if (mine !== generation) return;
      if (missing.length || extra.length) log.info({ resubscribed: missing.length, unsubscribed: extra.length }, "bus subscriptions repaired");
      settled = true;
      for (const listener of listeners) listener();
    } catch (err) {
      // The connection dropped again; its next `ready` starts over.
      log.debug({ err: (err as Error).message }, "bus subscription check interrupted");
    }
  }
  if (mode === "sharded") {
    quietSubscriptions(sub, log);
    sub.on("ready", () => void settle());
    sub.on("close", () => {
      generation++;
      settled = false;
    });
    if (sub.status === "ready") void settle();
  }

  // Messages this pod reads from Redis, whatever the channel: what sharding saves shows here.
  const received = { total: 0 };
  const count = () => void received.total++;
  for (const event of ["smessageBuffer", "messageBuffer", "pmessageBuffer"]) sub.on(event, count);

  return {
    mode,
    ready: () => pub.status === "ready" && sub.status === "ready" && settled,
    onSettled: (listener) => void listeners.push(listener),
    describe: () => ({ mode, ready: settled && sub.status === "ready", subscriptions: subscriptions().sort(), expected: expected().sort() }),
    register(registry) {
      scrapeCounter(
        registry,
        "chat_bus_messages_received_total",
        "Messages this pod read from the Redis bus (every channel and pattern).",
        undefined,
        received,
      );
      new Gauge({
        name: "chat_bus_subscribed_channels",
        help: "Channels and patterns the pod's Redis subscriber is on (sharded: 2 + one per room with a local member).",
        labelNames: ["mode"],
        registers: [registry],
        collect() {
          this.reset();
          this.set({ mode }, subscriptions().length);
        },
      });
    },
  };
}

/**
 * Makes `socket.join(room)` resolve once the pod's subscription to the room's channel is in
 * place: the adapter sends the SSUBSCRIBE without waiting, and a join that read the room's log
 * before Redis took it could miss a message appended in between. A PING on the subscriber
 * connection is answered after every command sent before it, so once it is back the channel is
 * live. It never rejects: if Redis is gone, the join fails on its next command anyway.
 */
function awaitableJoins(adapter: AdapterState, sub: Redis): void {
  wrapAddAll(adapter, (id, rooms) => ([...rooms].some((room) => room !== id) ? sub.ping().then(noop, noop) : undefined));
}

/**
 * The adapter sends its SSUBSCRIBE and SUNSUBSCRIBE without handling their promises, so one that
 * ioredis drops during an outage would surface as an unhandled rejection (an error in the logs).
 * Dropping it is expected, and `settle` repairs the subscriptions on reconnect: log it at debug.
 */
function quietSubscriptions(sub: Redis, log: Logger): void {
  quietCommands(sub, ["ssubscribe", "sunsubscribe"], (command, err) =>
    log.debug({ command, err: err.message }, "bus subscription change dropped; repaired on reconnect"),
  );
}
