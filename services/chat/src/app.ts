import type { Server as HttpServer } from "node:http";
import { fileURLToPath } from "node:url";
import express, { type Express } from "express";
import { Server, type Socket } from "socket.io";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import {
  createMemoryRoomLog,
  createRateLimit,
  createRedisRoomLog,
  createStorageQuota,
  type Ack,
  type BusMode,
  type Logger,
  type PresenceEvent,
} from "@chat/shared";
import type { ChatConfig } from "./config.js";
import type { ChatContext } from "./context.js";
import { drainClients } from "./drain.js";
import { createBinder, type Handler } from "./events.js";
import { createAuthenticator, type SocketData } from "./auth.js";
import { compileTrust, createClientAddress, requestAddress } from "./client-address.js";
import { guardServer, limitSlowRequests, securityHeaders } from "./http-guard.js";
import { membersApi } from "./members-api.js";
import { createModeration } from "./moderation.js";
import { publishPodStats } from "./pod-stats.js";
import { createWebhookEvents } from "./webhook-events.js";
import { attachBus, type ChatBus } from "./bus.js";
import { coalesceWrites } from "./coalesce.js";
import { fastPaths, registerFastPathGauge, type FastPaths } from "./compat/index.js";
import { trackConnections } from "./connections.js";
import { handshake, originCheck } from "./handshake.js";
import { userOf, userRoom } from "./identity.js";
import { messageHandlers } from "./messages.js";
import { createChatMetrics, type ChatMetrics } from "./metrics.js";
import { createPresence, type Presence } from "./presence.js";
import { releaseRequests } from "./release-requests.js";
import { guardSlowConsumers } from "./slow-consumer.js";
import { joinedRooms, leaveQuietly, roomHandlers } from "./rooms.js";
import { bindSession, endRevokedSessions } from "./sessions.js";
import { createListener } from "./tls.js";

export interface ChatServerOptions {
  config: ChatConfig;
  log: Logger;
  /** Two connections (publish and subscribe) to scale out; without them, a single node. */
  redis?: { pub: Redis; sub: Redis };
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
  io: Server;
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

const publicDir = fileURLToPath(new URL("./public/", import.meta.url));

/** Counts a handler's acks by result: `ok` or the error code. */
function counted(handler: Handler, counter: { inc(labels: { result: string }): void }): Handler {
  return async (socket, payload) => {
    const ack: Ack = await handler(socket, payload);
    counter.inc({ result: ack.ok ? "ok" : ack.error.code });
    return ack;
  };
}

/** Builds the chat service from its dependencies, without listening. */
export function createChatServer({ config, log, redis, instanceId, busMode = "classic", registry }: ChatServerOptions): ChatServer {
  const app = express();
  app.disable("x-powered-by");
  app.use(securityHeaders);
  app.use(express.static(publicDir, { index: "index.html", maxAge: "1h" }));

  // https/wss when TLS_CERT_FILE and TLS_KEY_FILE are set (reloaded when they change), else http.
  const tlsFiles = config.TLS_CERT_FILE && config.TLS_KEY_FILE ? { certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE } : undefined;
  const listener = createListener(app, tlsFiles, log);
  const httpServer = listener.server;
  const connections = trackConnections(httpServer);
  limitSlowRequests(httpServer);
  const io = new Server(httpServer, {
    maxHttpBufferSize: config.MAX_HTTP_BUFFER_SIZE,
    // The web page bundles its own client; serving another copy is surface for nothing.
    serveClient: false,
    // Other origins only when listed (never `*`): long-polling is refused in allowRequest, a
    // WebSocket by the handshake middleware, with a connect_error that says why.
    cors: config.CORS_ORIGINS ? { origin: config.CORS_ORIGINS } : undefined,
    allowRequest: originCheck(config.CORS_ORIGINS),
  });
  const bus = redis && attachBus(io, redis, { mode: busMode, log });

  // Webhook events go to a Redis Stream the notifier delivers from (docs/server-api.md#webhooks).
  const webhookEvents = redis && createWebhookEvents({ redis: redis.pub, log, instanceId });
  const withWebhooks = (inner: Presence): Presence => webhookEvents?.wrap(inner) ?? inner;
  const presence = withWebhooks(
    createPresence(redis?.pub, instanceId, log, {
      ttlSeconds: config.PRESENCE_TTL_SECONDS,
      // Through the adapter: the room's members on every pod hear it, from this pod alone.
      onExpired: (room, user) => {
        io.to(room).emit("presence", { room, user, action: "leave" } satisfies PresenceEvent);
        webhookEvents?.expired(room, user);
      },
    }),
  );
  const logOptions = { maxEntries: config.HISTORY_MAX_ENTRIES, maxAgeSeconds: config.HISTORY_MAX_AGE_SECONDS, busMode };
  const history = redis
    ? createRedisRoomLog(redis.pub, logOptions)
    : createMemoryRoomLog((room, event, payload) => io.to(room).emit(event, payload), logOptions);
  const limits = {
    messages: createRateLimit(redis?.pub, {
      keyPrefix: "chat:rl:msg",
      points: config.RATE_LIMIT_MESSAGES_PER_SECOND,
      durationSeconds: 1,
      burst: { points: config.RATE_LIMIT_MESSAGES_BURST, durationSeconds: 10 },
    }),
    // A connection lives on one pod, so its join limit needs no Redis round trip.
    joins: createRateLimit(undefined, { keyPrefix: "chat:rl:join", points: config.RATE_LIMIT_JOINS_PER_MINUTE, durationSeconds: 60 }),
    // Per user and across pods: reconnecting (a new socket id) does not reset it.
    userReads: createRateLimit(redis?.pub, { keyPrefix: "chat:rl:reads", points: config.RATE_LIMIT_JOINS_PER_USER_PER_MINUTE, durationSeconds: 60 }),
    connections: createRateLimit(redis?.pub, {
      keyPrefix: "chat:rl:conn",
      points: config.RATE_LIMIT_CONNECTIONS_PER_IP,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    userConnections: createRateLimit(redis?.pub, {
      keyPrefix: "chat:rl:uconn",
      points: config.RATE_LIMIT_CONNECTIONS_PER_USER,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    members: createRateLimit(redis?.pub, {
      keyPrefix: "chat:rl:members",
      points: config.RATE_LIMIT_MEMBERS_PER_MINUTE,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    storage: createStorageQuota(redis?.pub, {
      userBytes: config.QUOTA_USER_BYTES,
      roomBytes: config.QUOTA_ROOM_BYTES,
      totalBytes: config.QUOTA_TOTAL_BYTES,
      windowSeconds: config.QUOTA_WINDOW_SECONDS,
    }),
  };
  const ctx: ChatContext = {
    io,
    config,
    log,
    presence,
    history,
    limits,
    redis,
    busReady: () => !bus || bus.ready(),
  };

  const paths = fastPaths(config.FAST_PATH, log);
  const slowConsumers = guardSlowConsumers(io, { maxBytes: config.MAX_CLIENT_BUFFER_BYTES, log, onClose: () => metrics.slowConsumer() });
  const metrics = createChatMetrics(io, presence, redis, registry, { direct: paths.direct_write, overBudget: slowConsumers?.overBudget });
  registerFastPathGauge(metrics.registry, paths);
  if (paths.coalesce) coalesceWrites(io, { onCoalesced: (packets) => metrics.coalesced(packets) });
  if (paths.release_requests) releaseRequests(io);
  bus?.register(metrics.registry);
  ctx.metrics = metrics;

  const authenticate = createAuthenticator(config);
  const addressOfRequest = requestAddress(config.TRUST_PROXY);
  const trusted = compileTrust(config.TRUST_PROXY);
  guardServer(httpServer, io, {
    maxPerAddress: config.MAX_OPEN_PER_ADDRESS,
    clientAddress: addressOfRequest,
    // With a hop count every peer is believed, so no peer can be told apart as a proxy: the
    // socket cap then counts the peers themselves only when nothing is trusted.
    isProxy: (address) => ("proxies" in config.TRUST_PROXY ? trusted(address, 0) : config.TRUST_PROXY.hops > 0),
    onRefused: (what) => metrics.rateLimited.inc({ kind: what === "socket" ? "open_socket" : "open_session" }),
  });
  membersApi(app, ctx, { authenticate, clientAddress: addressOfRequest, limit: limits.members, failures: limits.connections });

  let draining = false;
  if (config.AUTH_MODE === "open") log.warn("AUTH_MODE=open: anyone can connect under any name. Use AUTH_MODE=jwt in production");
  if ("hops" in config.TRUST_PROXY && config.TRUST_PROXY.hops > 0) {
    log.warn(`TRUST_PROXY=${config.TRUST_PROXY.hops} believes X-Forwarded-For from any peer; list the proxies' addresses or CIDRs instead`);
  }
  const admit = handshake(ctx, {
    authenticate,
    clientAddress: createClientAddress(config.TRUST_PROXY),
    addressLimit: limits.connections,
    userLimit: limits.userConnections,
    draining: () => draining,
  });
  // The middleware answers every failure through `next` itself; only `next` throwing could reject
  // it, and that is logged rather than left as an unhandled rejection that ends the process.
  io.use((socket, next) => {
    admit(socket, next).catch((err: unknown) => log.error({ sid: socket.id, err }, "handshake middleware failed"));
  });

  // After a Redis outage this pod may have missed messages on the bus: its clients re-join their
  // rooms with `since` and catch up from the logs.
  let busDown = false;
  const onClose = () => (busDown = true);
  const onReady = () => {
    if (!busDown || !ctx.busReady()) return;
    busDown = false;
    log.info("bus reconnected: asking local clients to re-sync");
    io.local.emit("resync", { reason: "bus_reconnected" });
    if (redis) {
      endRevokedSessions(redis.pub, io.of("/").sockets.values()).then(
        (ended) => ended && log.info({ ended }, "ended sessions revoked during the outage"),
        (err: Error) => log.warn({ err: err.message }, "could not check for revoked sessions"),
      );
    }
  };
  redis?.pub.on("close", onClose).on("ready", onReady);
  redis?.sub.on("close", onClose).on("ready", onReady);
  bus?.onSettled(onReady);

  const rooms = roomHandlers(ctx);
  // Bans and mutes from the server API (docs/server-api.md); they need Redis, as the API does.
  const moderation = redis && createModeration({ io, redis: redis.pub, log, leave: (socket, room) => leaveQuietly(ctx, socket, room) });
  const stopPodStats =
    redis &&
    publishPodStats({
      io,
      redis: redis.pub,
      log,
      pod: config.POD_NAME,
      instance: instanceId,
      rooms: () => presence.localRooms(),
      ready: () => !draining && ctx.busReady(),
      ttlSeconds: config.PRESENCE_TTL_SECONDS,
    });
  const guardJoin = moderation ? moderation.guardJoin : (handler: Handler) => handler;
  const guardMessage = moderation ? moderation.guardMessage : (handler: Handler) => handler;
  const bindHandlers = createBinder(
    {
      join: counted(guardJoin(rooms.join), metrics.joins),
      leave: rooms.leave,
      history: rooms.history,
      message: counted(
        guardMessage(webhookEvents ? webhookEvents.afterMessage(messageHandlers(ctx).message) : messageHandlers(ctx).message),
        metrics.messagesReceived,
      ),
    },
    log,
    {
      eventsPerSecond: config.RATE_LIMIT_EVENTS_PER_SECOND,
      eventsBurst: config.RATE_LIMIT_EVENTS_BURST,
      onLimited: () => metrics.rateLimited.inc({ kind: "event" }),
    },
  );
  // Shared listeners (`this` is the socket): nothing is allocated per connection but its entries.
  function onDisconnecting(this: Socket) {
    for (const room of joinedRooms(this)) void leaveQuietly(ctx, this, room);
  }
  io.on("connection", (socket) => {
    // Cannot reject: classic mode joins synchronously, and in sharded mode the adapter hook
    // resolves on the subscription's PING either way. A user room only carries targeted events
    // (session ends, revocations), so the connection does not wait for it.
    void socket.join(userRoom(userOf(socket).id));
    bindSession(socket, (socket.data as SocketData).session, redis?.pub);
    bindHandlers(socket);
    socket.on("disconnecting", onDisconnecting);
  });

  return {
    app,
    httpServer,
    io,
    presence,
    metrics,
    bus,
    fastPaths: paths,
    ready: () => ctx.busReady(),
    async drain(seconds) {
      // The port stays open: a handshake that still reaches this pod is refused by the middleware
      // with `unavailable`, which the client can read, instead of a bare refused connection.
      draining = true;
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
    },
    async close(graceMs = 500) {
      listener.stopWatching();
      slowConsumers?.stop();
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
      await presence.close().catch((err: Error) => log.warn({ err: err.message }, "presence cleanup failed"));
      await moderation?.close();
      await stopPodStats?.();
      webhookEvents?.stop();
    },
  };
}
