import type { Server as HttpServer } from "node:http";
import type { Express } from "express";
import type { Registry } from "prom-client";
import {
  createMemoryRoomLog,
  createRedisRoomLog,
  isRedisCluster,
  withReplicaWait,
  type Ack,
  type RedisClient,
  type BusMode,
  type Logger,
  type PresenceEvent,
  type RoomLog,
} from "@chat/shared";
import { admit } from "./admission.js";
import { attachBus, type ChatBus } from "./bus.js";
import type { FastPaths } from "./compat/index.js";
import type { ChatConfig } from "./config.js";
import { createConnectionCounts, type ConnectionCounts } from "./connection-cap.js";
import { adoptRelease } from "./handshake.js";
import { installDelivery } from "./delivery.js";
import { createDmDirectory, dmHandlers, type DmDirectory } from "./dms.js";
import { drainClients } from "./drain.js";
import { editHandlers } from "./edits.js";
import { createBinder, type Handler } from "./events.js";
import { userRoom } from "./identity.js";
import { createLimits } from "./limits.js";
import { messageHandlers, type MessageDeps } from "./messages.js";
import { createModeration } from "./moderation.js";
import { publishPodStats } from "./pod-stats.js";
import { createWebhookEvents } from "./webhook-events.js";
import { createChatMetrics, type ChatMetrics } from "./metrics.js";
import { createPresence, type Presence } from "./presence.js";
import { readHandlers } from "./read-markers.js";
import { joinedRooms, leaveAndAnnounce, roomHandlers, type RoomDeps } from "./rooms.js";
import { bindSession, endRevokedSessions } from "./sessions.js";
import type { ChatServerIo, ChatSocket } from "./socket-types.js";
import { createTransport, type Transport } from "./transport.js";
import { typingHandlers } from "./typing.js";

export interface ChatServerOptions {
  config: ChatConfig;
  log: Logger;
  /** Two connections (publish and subscribe) to scale out; without them, a single node. */
  redis?: { pub: RedisClient; sub: RedisClient };
  /** Tells this process apart from an earlier one with the same pod name. */
  instanceId: string;
  /** The deployment's bus mode (`resolveBusMode`), with `redis`. @default "classic" */
  busMode?: BusMode;
  /** Where the metrics go (the probe server's, when it starts first). @default a new one */
  registry?: Registry;
}

export interface ChatServer {
  app: Express;
  httpServer: HttpServer;
  io: ChatServerIo;
  presence: Presence;
  metrics: ChatMetrics;
  /** The Redis adapter between the pods; absent on a single node. */
  bus?: ChatBus;
  /** The fast paths in use (`FAST_PATH` and the start-up checks). */
  fastPaths: FastPaths;
  /** True when Redis (if any) is ready, so this pod can take clients. */
  ready(): boolean;
  /** Refuses new connections (`unavailable`) and disconnects every client, paced over `seconds`. */
  drain(seconds: number): Promise<void>;
  /**
   * Disconnects every client and stops; does not close the Redis connections it was given.
   * Connections still open `graceMs` after it starts (a peer that stopped reading, one that never
   * answers the close frame, a long-poll in flight) are destroyed, so it always ends.
   */
  close(graceMs?: number): Promise<void>;
}

/** Wraps a handler so that its acks are counted by result: `ok` or the error code. */
function countAcks(handler: Handler, counter: { inc(labels: { result: string }): void }): Handler {
  return async (socket, payload) => {
    const ack: Ack = await handler(socket, payload);
    counter.inc({ result: ack.ok ? "ok" : ack.error.code });
    return ack;
  };
}

/** The composition root of the chat service: builds it from its dependencies, without listening. */
export function createChatServer({ config, log, redis, instanceId, busMode = "classic", registry }: ChatServerOptions): ChatServer {
  const transport = createTransport(config, log);
  const { io } = transport;
  const bus = redis && attachBus(io, redis, { mode: busMode, log });
  // Webhook events go to a Redis Stream the notifier delivers from (docs/server-api.md#webhooks).
  const webhookEvents = redis && createWebhookEvents({ redis: redis.pub, log, instanceId });
  const withWebhooks = (inner: Presence): Presence => webhookEvents?.wrap(inner) ?? inner;
  const presence = withWebhooks(
    createPresence(redis?.pub, instanceId, log, {
      ttlSeconds: config.PRESENCE_TTL_SECONDS,
      announceMaxMembers: config.PRESENCE_ANNOUNCE_MAX_MEMBERS,
      // Through the adapter: the room's members on every pod hear it, from this pod alone.
      onExpired: (room, user, announce) => {
        if (announce) io.to(room).emit("presence", { room, user, action: "leave" } satisfies PresenceEvent);
        webhookEvents?.expired(room, user);
      },
      onResync: () => connections.resync(),
    }),
  );
  const connections = createConnectionCounts(redis?.pub, instanceId, log, { liveInstances: (ids) => presence.liveInstances(ids) });
  const metrics = createChatMetrics(io, presence, redis, registry);
  // The write path, explicitly here: after attachBus, whose adapter the fan-out wraps.
  const delivery = installDelivery(io, config, log, metrics);
  bus?.register(metrics.registry);

  let draining = false;
  const limits = createLimits(redis?.pub, config);
  admit(transport, { config, log, limits, metrics, presence, connections, redis: redis?.pub, draining: () => draining });
  // After a Redis outage this pod may have missed messages on the bus: its clients re-join their
  // rooms with `since` and catch up from the logs.
  if (redis && bus) bus.on("resynced", () => resyncClients(io, redis.pub, log));
  const busReady = () => !bus || bus.ready();
  const history = createHistory(io, redis, config, busMode);
  const dms = createDmDirectory(redis?.pub, config.HISTORY_MAX_AGE_SECONDS);
  const deps = { config, log, presence, history, dms, limits, metrics, busReady, connections };
  // Bans and mutes from the server API (docs/server-api.md); they need Redis, as the API does.
  const moderation = redis && createModeration({ io, redis: redis.pub, log, leave: (socket, room) => leaveAndAnnounce(deps, socket, room) });
  const stopPodStats =
    redis &&
    publishPodStats({
      io,
      redis: redis.pub,
      log,
      pod: config.POD_NAME,
      instance: instanceId,
      rooms: () => presence.localRooms(),
      ready: () => !draining && busReady(),
      ttlSeconds: config.PRESENCE_TTL_SECONDS,
    });
  bindClients(io, deps, redis?.pub, {
    join: (handler) => moderation?.guardJoin(handler) ?? handler,
    message: (handler) => moderation?.guardMessage(webhookEvents ? webhookEvents.afterMessage(handler) : handler) ?? handler,
  });

  return {
    app: transport.app,
    httpServer: transport.httpServer,
    io,
    presence,
    metrics,
    bus,
    fastPaths: delivery.paths,
    ready: busReady,
    drain(seconds) {
      // The port stays open: a handshake that still reaches this pod is refused by the middleware
      // with `unavailable`, which the client can read, instead of a bare refused connection.
      draining = true;
      return drainWithin(io, seconds, log);
    },
    async close(graceMs = 500) {
      delivery.slowConsumers?.stop();
      await closeTransport(transport, graceMs, log);
      await connections.close().catch((err: Error) => log.warn({ err: err.message }, "connection counts cleanup failed"));
      await presence.close().catch((err: Error) => log.warn({ err: err.message }, "presence cleanup failed"));
      await moderation?.close();
      await stopPodStats?.();
      webhookEvents?.stop();
    },
  };
}

/** Every room's log: in Redis (appended and published by one script), or in memory on a single node. */
function createHistory(io: ChatServerIo, redis: { pub: RedisClient } | undefined, config: ChatConfig, busMode: BusMode): RoomLog {
  const options = { maxEntries: config.HISTORY_MAX_ENTRIES, maxAgeSeconds: config.HISTORY_MAX_AGE_SECONDS, busMode };
  // With REDIS_WAIT_REPLICAS, an append is acked only once that many replicas have it (Sentinel).
  const wait = { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT_MS };
  // Never on a cluster (the configuration refuses it there): WAIT would reach one master, not the room's.
  if (redis)
    return isRedisCluster(redis.pub) ? createRedisRoomLog(redis.pub, options) : withReplicaWait(createRedisRoomLog(redis.pub, options), redis.pub, wait);
  // The memory log hands over whatever was appended, under the event it was appended as.
  const emit = io.to.bind(io) as (room: string) => { emit(event: string, payload: unknown): boolean };
  return createMemoryRoomLog((room, event, payload) => emit(room).emit(event, payload), options);
}

/** Asks this pod's clients to re-join with `since`, and ends the sessions revoked while the bus was down. */
function resyncClients(io: ChatServerIo, redis: RedisClient, log: Logger): void {
  log.info("bus reconnected: asking local clients to re-sync");
  io.local.emit("resync", { reason: "bus_reconnected" });
  endRevokedSessions(redis, io.of("/").sockets.values()).then(
    (ended) => ended && log.info({ ended }, "ended sessions revoked during the outage"),
    (err: Error) => log.warn({ err: err.message }, "could not check for revoked sessions"),
  );
}

/** Binds the event handlers to every connection, and the leave of its rooms to its disconnect. */
function bindClients(
  io: ChatServerIo,
  deps: RoomDeps & MessageDeps & { config: ChatConfig; metrics: ChatMetrics; connections: ConnectionCounts; history: RoomLog; dms: DmDirectory },
  redis: RedisClient | undefined,
  /** The server API's guards around `join` and `message` (moderation, webhooks). */
  wrap: { join: (handler: Handler) => Handler; message: (handler: Handler) => Handler },
): void {
  const { config, log, metrics, connections } = deps;
  const rooms = roomHandlers(deps);
  const join = countAcks(wrap.join(rooms.join), metrics.joins);
  const bindHandlers = createBinder(
    {
      join,
      leave: rooms.leave,
      history: rooms.history,
      message: countAcks(wrap.message(messageHandlers(deps).message), metrics.messagesReceived),
      // Issue 19's additions, each in its own module.
      ...typingHandlers(redis),
      ...dmHandlers({ io, directory: deps.dms, join }),
      ...editHandlers(deps),
      ...readHandlers(deps),
    },
    log,
    {
      eventsPerSecond: config.RATE_LIMIT_EVENTS_PER_SECOND,
      eventsBurst: config.RATE_LIMIT_EVENTS_BURST,
      onLimited: () => metrics.rateLimited.inc({ kind: "event" }),
    },
  );
  // Shared listeners (`this` is the socket): nothing is allocated per connection but its entries.
  function onDisconnecting(this: ChatSocket) {
    for (const room of joinedRooms(this)) void leaveAndAnnounce(deps, this, room);
  }
  function uncount(this: ChatSocket) {
    void connections.disconnect(this.data.user.id).catch(() => undefined);
  }
  io.on("connection", (socket) => {
    adoptRelease(socket, uncount);
    // Cannot reject: classic mode joins synchronously, and in sharded mode the adapter hook
    // resolves on the subscription's PING either way. A user room only carries targeted events
    // (session ends, revocations), so the connection does not wait for it.
    void socket.join(userRoom(socket.data.user.id));
    bindSession(socket, socket.data.session, redis);
    bindHandlers(socket);
    socket.on("disconnecting", onDisconnecting);
  });
}

/** Disconnects every client, paced over `seconds`; whoever is left when the window is over goes at once. */
async function drainWithin(io: ChatServerIo, seconds: number, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, seconds * 1000 + 200)));
  await Promise.race([drainClients(io, seconds, log), late]);
  clearTimeout(timer);
  // On a loaded machine the paced batches can fall behind: whoever they did not reach in time
  // is disconnected now, all at once (a transport close: the client reconnects elsewhere and
  // catches up), so that shutdown stays within its bound.
  const left = [...io.of("/").sockets.values()];
  if (left.length) log.warn({ clients: left.length }, "drain window over: disconnecting the rest at once");
  for (const socket of left) socket.conn.close(true);
}

/** Closes Socket.IO and the HTTP server; connections still open after `graceMs` are destroyed. */
async function closeTransport({ io, listener, connections }: Transport, graceMs: number, log: Logger): Promise<void> {
  listener.stopWatching();
  // The callback runs once the HTTP server has closed, later than the promise io.close()
  // returns; a rejection of that promise (an adapter failing to close) reaches the caller.
  const closed = new Promise<void>((resolve, reject) => {
    io.close(() => resolve()).catch(reject);
  });
  const stragglers = setTimeout(() => {
    const destroyed = connections.destroyAll();
    if (destroyed) log.info({ destroyed }, "destroyed connections still open after the drain");
  }, graceMs);
  await closed;
  clearTimeout(stragglers);
}
