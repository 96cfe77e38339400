import { EventEmitter } from "node:events";
import type { RedisClient } from "@chat/shared";
import { Gauge, type Registry } from "prom-client";
import type { Namespace } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { BUS_KEY, isRedisCluster, scrapeCounter, type BusMode, type Logger } from "@chat/shared";
import { awaitableJoins, trackSubscriptions, watchSubscriptions, type AdapterState, type PendingSubscribes } from "./bus-subscriptions.js";
import type { ChatServerIo } from "./socket-types.js";

/** The Socket.IO adapter between the pods, in either bus mode, and what it is subscribed to. */
export interface ChatBus {
  mode: BusMode;
  /**
   * Redis is ready, and (in sharded mode) the subscriptions are known to be in place: after every
   * (re)connect the pod checks them against its rooms before it reports ready again.
   */
  ready(): boolean;
  /**
   * `resynced`: the bus is ready again after an outage (either connection closed). This pod may
   * have missed messages meanwhile; it is emitted once per recovery, and only then.
   */
  on(event: "resynced", listener: () => void): void;
  /** What this pod is subscribed to, as Redis acknowledged it, and what it should be. */
  describe(): { mode: BusMode; ready: boolean; subscriptions: string[]; expected: string[] };
  /** Adds the bus metrics to `registry`. */
  register(registry: Registry): void;
}

/**
 * Installs the Redis adapter on `io`: `createAdapter` in classic mode, `createShardedAdapter` with
 * dynamic subscriptions in sharded mode (a pod subscribes to a room's channel when its first
 * local member joins and unsubscribes when the last one leaves). The bus owns its recovery: it
 * watches both connections and emits `resynced` when it is whole again.
 */
export function attachBus(io: ChatServerIo, redis: { pub: RedisClient; sub: RedisClient }, { mode, log }: { mode: BusMode; log: Logger }): ChatBus {
  const { pub, sub } = redis;
  // Before the adapter exists: it subscribes to its main channels as it is made.
  const pending = mode === "sharded" ? watchSubscriptions(sub, log) : new Map<string, Promise<unknown>>();
  installAdapter(io, redis, mode, pending);
  const events = new EventEmitter();
  const adapter = () => io.of("/").adapter as unknown as AdapterState;
  const subscriptions = trackSubscriptions(sub, mode, adapter, log, () => recovered(), pending);
  const ready = () => pub.status === "ready" && sub.status === "ready" && subscriptions.settled();

  // One owner for recovery: any close marks the bus down, and the first moment it is whole again
  // (both connections ready and, in sharded mode, the subscriptions repaired) is one `resynced`.
  let down = false;
  const lost = () => void (down = true);
  function recovered(): void {
    if (!down || !ready()) return;
    down = false;
    events.emit("resynced");
  }
  for (const connection of [pub, sub]) connection.on("close", lost).on("ready", recovered);
  // On a cluster a master's subscriber connection can go (a failover) while the cluster stays up:
  // its rooms may have missed messages until ioredis resubscribes them on the new master.
  if (isRedisCluster(sub)) sub.on("-subscriber", lost);

  // Messages this pod reads from Redis, whatever the channel: what sharding saves shows here.
  const received = { total: 0 };
  const count = () => void received.total++;
  for (const event of ["smessageBuffer", "messageBuffer", "pmessageBuffer"]) sub.on(event, count);

  return {
    mode,
    ready,
    on: (event, listener) => void events.on(event, listener),
    describe: () => ({
      mode,
      ready: subscriptions.settled() && sub.status === "ready",
      subscriptions: subscriptions.actual().sort(),
      expected: subscriptions.expected().sort(),
    }),
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
          this.set({ mode }, subscriptions.actual().length);
        },
      });
    },
  };
}

function installAdapter(io: ChatServerIo, { pub, sub }: { pub: RedisClient; sub: RedisClient }, mode: BusMode, pending: PendingSubscribes): void {
  if (mode === "classic") {
    io.adapter(createAdapter(pub, sub, { key: BUS_KEY }));
    return;
  }
  const sharded = createShardedAdapter(pub, sub, { channelPrefix: BUS_KEY, subscriptionMode: "dynamic" });
  // A plain function, not an arrow: Socket.IO calls the factory with `new`.
  io.adapter(function shardedAdapter(nsp: Namespace) {
    const adapter = sharded(nsp);
    awaitableJoins(adapter as unknown as AdapterState, sub, pending);
    return adapter;
  });
}
