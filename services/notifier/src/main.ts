import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import {
  LIMIT_PREFIXES,
  connectRedis,
  createRateLimit,
  createRedisClusterClient,
  createRedisRoomLog,
  isRedisReady,
  redisTarget,
  runService,
  withReplicaWait,
  type RoomLog,
} from "@chat/shared";
import type { Cluster, Redis } from "ioredis";
import { createNotifierApp } from "./app.js";
import { loadConfig } from "./config.js";
import { createNotifierMetrics } from "./metrics.js";
import { createPublisher } from "./publisher.js";
import { createRevoker } from "./revoke.js";
import { serverApiRoutes } from "./server-api.js";
import { startStreamConsumer } from "./stream.js";
import { startWebhooks } from "./webhooks.js";

/** The composition root: what the notifier connects to and builds; `runService` does the rest. */
await runService({
  name: "notifier",
  loadConfig,
  connect(config, log) {
    // Two connections: the stream loop's batches would otherwise queue in front of HTTP publishes.
    const target = redisTarget(config)!; // the configuration requires one
    const settings = { username: config.REDIS_USERNAME, password: config.REDIS_PASSWORD, caFile: config.REDIS_TLS_CA_FILE, tls: config.REDIS_TLS };
    // Every command the notifier sends is slot-safe (publisher.ts, stream-batch.ts, revoke.ts), so a
    // cluster takes the same code as one server; `Cluster` follows MOVED and failovers on its own.
    const connect = (role: string): Redis | Cluster =>
      target.kind === "cluster" ? createRedisClusterClient(target, settings, { role, log }) : connectRedis(target, settings, { role, log });
    const httpRedis = connect("http");
    const streamRedis = connect("stream");
    const metrics = createNotifierMetrics(httpRedis, config.NOTIFIER_STREAM, config.NOTIFIER_GROUP);
    const consumerName = `${config.POD_NAME}-${randomBytes(3).toString("hex")}`;
    // Webhook delivery polls and waits on endpoints: a connection of its own, only when there are endpoints.
    const webhookRedis = config.WEBHOOK_URLS.length ? connect("webhooks") : undefined;
    const webhooks = webhookRedis && startWebhooks({ config, redis: webhookRedis, log, registry: metrics.registry, consumer: consumerName });
    return {
      redis: httpRedis,
      registry: metrics.registry,
      async start(busMode) {
        const logOptions = { maxEntries: config.HISTORY_MAX_ENTRIES, maxAgeSeconds: config.HISTORY_MAX_AGE_SECONDS, busMode };
        // With REDIS_WAIT_REPLICAS, a room event is accepted only once that many replicas have it.
        const wait = { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT_MS };
        // WAIT is for one master (the shared config check refuses it with a cluster): there a room log is the log itself.
        const roomLogOn = (redis: Redis | Cluster): RoomLog =>
          redis.isCluster ? createRedisRoomLog(redis, logOptions) : withReplicaWait(createRedisRoomLog(redis, logOptions), redis as Redis, wait);
        const publisherFor = (redis: Redis | Cluster) =>
          createPublisher(redis, { dedupeWindowSeconds: config.NOTIFIER_DEDUPE_WINDOW_SECONDS, roomLog: roomLogOn(redis), busMode });
        const app = createNotifierApp({
          config,
          log,
          metrics,
          publisher: publisherFor(httpRedis),
          revoker: createRevoker(httpRedis, busMode),
          rateLimit: createRateLimit(httpRedis, { keyPrefix: LIMIT_PREFIXES.notifier, points: config.RATE_LIMIT_NOTIFIER_PER_SECOND, durationSeconds: 1 }),
          redisReady: () => isRedisReady(httpRedis),
          serverApi: serverApiRoutes({
            redis: httpRedis,
            roomLog: roomLogOn(httpRedis),
            busMode,
            log,
            redisReady: () => isRedisReady(httpRedis),
            onDeleted: webhooks && ((room, id, entryId) => webhooks.deleted(room, id, entryId)),
            more: webhooks ? [(v1) => webhooks.routes(v1)] : [],
          }),
        });
        const httpServer = createServer(app);
        const consumer = startStreamConsumer({
          redis: streamRedis,
          publisher: publisherFor(streamRedis),
          log,
          metrics,
          stream: config.NOTIFIER_STREAM,
          group: config.NOTIFIER_GROUP,
          consumer: consumerName,
          batchSize: config.NOTIFIER_BATCH_SIZE,
          batchBytes: config.NOTIFIER_BATCH_BYTES,
          pollMs: config.NOTIFIER_POLL_MS,
          claimIdleMs: config.NOTIFIER_CLAIM_IDLE_MS,
          data: { maxBytes: config.NOTIFIER_MAX_DATA_BYTES, maxDepth: config.NOTIFIER_MAX_DATA_DEPTH },
        });
        return {
          httpServer,
          ready: () => isRedisReady(httpRedis) && isRedisReady(streamRedis),
          async drain() {
            await consumer.stop();
            await webhooks?.stop();
            await new Promise<void>((resolve) => {
              httpServer.close(() => resolve());
              // Keep-alive connections would hold close() open; requests in flight still finish.
              httpServer.closeIdleConnections();
            });
          },
          upFields: { stream: config.NOTIFIER_STREAM },
        };
      },
      async close() {
        await Promise.allSettled([httpRedis.quit(), streamRedis.quit(), webhookRedis?.quit()]);
      },
    };
  },
});
