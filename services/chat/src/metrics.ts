import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RedisClient } from "@chat/shared";
import { scrapeCounter } from "@chat/shared";
import type { BroadcastObserver } from "./fanout.js";
import type { Presence } from "./presence.js";
import type { ChatServerIo } from "./socket-types.js";

/**
 * The chat's Prometheus metrics. Labels stay low-cardinality: a room or a user is never a label.
 * Per-delivery counts are plain numbers added up at scrape time, to keep work off the hot path.
 */
export interface ChatMetrics {
  registry: Registry;
  joins: Counter<"result">;
  messagesReceived: Counter<"result">;
  rateLimited: Counter<"kind">;
  catchUps: Counter;
  replayed: Counter;
  /** Counts one write that carried `packets` packets at once (see coalesce.ts). */
  coalesced(packets: number): void;
  /** Counts a connection closed for being over its outbound budget (see slow-consumer.ts). */
  slowConsumer(): void;
  /** Counts each broadcast delivered to this pod's sockets: pass it to `attachFanout` as `observe`. */
  observeBroadcast: BroadcastObserver;
}

// Over 60 lines, but flat: one declaration per metric, each read on its own; splitting them
// into groups would only scatter the list a reader looks for a metric in.
export function createChatMetrics(
  io: Pick<ChatServerIo, "of">,
  presence: Pick<Presence, "localRooms">,
  redis?: { pub: RedisClient; sub: RedisClient },
  registry = new Registry(),
): ChatMetrics {
  const deliveries = { message: 0, notification: 0 };
  const writes = { direct: 0, engine: 0 };
  const coalesced = { total: 0 };
  const coalescedWrites = { total: 0 };
  const slow = { total: 0 };

  new Gauge({
    name: "chat_connected_clients",
    help: "Socket.IO connections on this pod.",
    registers: [registry],
    collect() {
      this.set(io.of("/").sockets.size);
    },
  });
  new Gauge({
    name: "chat_rooms_with_local_members",
    help: "Rooms with at least one member connected to this pod.",
    registers: [registry],
    collect() {
      this.set(presence.localRooms());
    },
  });
  new Gauge({
    name: "chat_redis_up",
    help: "1 when the Redis connection is ready, by connection (pub, sub); absent without Redis.",
    labelNames: ["connection"],
    registers: [registry],
    collect() {
      if (!redis) return;
      this.set({ connection: "pub" }, redis.pub.status === "ready" ? 1 : 0);
      this.set({ connection: "sub" }, redis.sub.status === "ready" ? 1 : 0);
    },
  });
  scrapeCounter(registry, "chat_deliveries_total", "Events delivered to local sockets, by event (message, notification).", "event", deliveries);
  scrapeCounter(
    registry,
    "chat_coalesced_packets_total",
    "Packets written to a WebSocket in one write together with others that had queued up behind a write in flight.",
    undefined,
    coalesced,
  );
  scrapeCounter(
    registry,
    "chat_coalesced_writes_total",
    "Writes that carried several packets at once (see chat_coalesced_packets_total).",
    undefined,
    coalescedWrites,
  );
  scrapeCounter(
    registry,
    "chat_fanout_writes_total",
    "Broadcast deliveries by path: direct (the shared frame written to the TCP socket) or engine (through Engine.IO, when something was queued before it).",
    "path",
    writes,
  );
  scrapeCounter(
    registry,
    "chat_slow_consumer_disconnects_total",
    "Connections closed (slow_consumer) because more than MAX_CLIENT_BUFFER_BYTES was queued for them unread.",
    undefined,
    slow,
  );
  const fanout = new Histogram({
    name: "chat_fanout_latency_seconds",
    help: "From a message's timestamp (taken when it is stored) to its emission to this pod's sockets.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  // Called once per broadcast (fanout.ts), so the fan-out latency is observed once per message
  // per pod, and nothing runs per recipient.
  const observeBroadcast: BroadcastObserver = (event, payload, recipients, direct) => {
    writes.direct += direct;
    writes.engine += recipients - direct;
    if (event === "message") {
      deliveries.message += recipients;
      const ts = (payload as { ts?: unknown } | undefined)?.ts;
      if (recipients > 0 && typeof ts === "number") fanout.observe(Math.max(0, Date.now() - ts) / 1000);
    } else if (event === "notification") {
      deliveries.notification += recipients;
    }
  };

  return {
    registry,
    joins: new Counter({ name: "chat_joins_total", help: "Joins, by result (ok or the error code).", labelNames: ["result"], registers: [registry] }),
    messagesReceived: new Counter({
      name: "chat_messages_received_total",
      help: "Messages sent by clients to this pod, by result (ok or the error code).",
      labelNames: ["result"],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: "chat_rate_limited_total",
      help: "Requests refused by a rate limit or cap, by kind (message, join, user_reads, connection, event, open_socket, open_session).",
      labelNames: ["kind"],
      registers: [registry],
    }),
    catchUps: new Counter({ name: "chat_catchups_total", help: "Joins with since served from the room log.", registers: [registry] }),
    replayed: new Counter({ name: "chat_replayed_entries_total", help: "Log entries sent in join catch-ups.", registers: [registry] }),
    coalesced: (packets) => {
      coalesced.total += packets;
      coalescedWrites.total++;
    },
    slowConsumer: () => void slow.total++,
    observeBroadcast,
  };
}
