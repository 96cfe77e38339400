import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ConfigError,
  ProbeFailure,
  createLogger,
  createRedisClient,
  createRateLimit,
  createRedisRoomLog,
  isRedisReady,
  redisOptions,
  settleBusMode,
  startOperations,
} from "@chat/shared";
import type { Redis } from "ioredis";
import { createNotifierApp } from "./app.js";
import { loadConfig, type NotifierConfig } from "./config.js";
import { createNotifierMetrics } from "./metrics.js";
import { createPublisher } from "./publisher.js";
import { createRevoker } from "./revoke.js";
import { serverApiRoutes } from "./server-api.js";
import { startWebhooks } from "./webhooks.js";
import { startStreamConsumer, type StreamConsumer } from "./stream.js";

/** The composition root: configuration, connections, probes, listening and shutdown. */
function configure(): NotifierConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`notifier: ${err.message}`);
    process.exit(1);
  }
}

const config = configure();
const log = createLogger({ service: "notifier", pod: config.POD_NAME, level: config.LOG_LEVEL });

// Last line of defence: a rejected promise from a library is logged, never fatal.
process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));

// Two connections: the stream loop's batches would otherwise queue in front of HTTP publishes.
const options = redisOptions(config.REDIS_URL, { username: config.REDIS_USERNAME, password: config.REDIS_PASSWORD, caFile: config.REDIS_TLS_CA_FILE });
const httpRedis = createRedisClient(config.REDIS_URL, { role: "http", log, options });
const streamRedis = createRedisClient(config.REDIS_URL, { role: "stream", log, options });
const metrics = createNotifierMetrics(httpRedis, config.NOTIFIER_STREAM, config.NOTIFIER_GROUP);
// Webhook delivery polls and waits on endpoints: a connection of its own, only when there are endpoints.
const webhookRedis = config.WEBHOOK_URLS.length ? createRedisClient(config.REDIS_URL, { role: "webhooks", log, options }) : undefined;
const consumerName = `${config.POD_NAME}-${randomBytes(3).toString("hex")}`;
const webhooks = webhookRedis && startWebhooks({ config, redis: webhookRedis, log, registry: metrics.registry, consumer: consumerName });
// Built once the bus mode is known, which Redis keeps: meanwhile the probes run and say why the
// notifier is not ready yet.
let started: { httpServer: Server; consumer: StreamConsumer } | undefined;

const operations = await startOperations({
  port: config.PROBE_PORT,
  host: config.HOST,
  log,
  registry: metrics.registry,
  shutdownDelaySeconds: config.SHUTDOWN_DELAY_SECONDS,
  ready() {
    if (!started) throw new ProbeFailure("waiting for Redis to learn the message bus mode");
    if (!isRedisReady(httpRedis) || !isRedisReady(streamRedis)) throw new ProbeFailure("Redis is unreachable");
  },
  async drain() {
    if (started) {
      const { consumer, httpServer } = started;
      await consumer.stop();
      await webhooks?.stop();
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        // Keep-alive connections would hold close() open; requests in flight still finish.
        httpServer.closeIdleConnections();
      });
    }
    await Promise.allSettled([httpRedis.quit(), streamRedis.quit(), webhookRedis?.quit()]);
  },
});

const busMode = await settleBusMode(httpRedis, config.BUS_MODE, log);
const logOptions = { maxEntries: config.HISTORY_MAX_ENTRIES, maxAgeSeconds: config.HISTORY_MAX_AGE_SECONDS, busMode };
const publisherFor = (redis: Redis) =>
  createPublisher(redis, {
    dedupeWindowSeconds: config.NOTIFIER_DEDUPE_WINDOW_SECONDS,
    roomLog: createRedisRoomLog(redis, logOptions),
    busMode,
  });

const app = createNotifierApp({
  config,
  log,
  metrics,
  publisher: publisherFor(httpRedis),
  revoker: createRevoker(httpRedis, busMode),
  rateLimit: createRateLimit(httpRedis, { keyPrefix: "notifier:rl", points: config.RATE_LIMIT_NOTIFIER_PER_SECOND, durationSeconds: 1 }),
  redisReady: () => isRedisReady(httpRedis),
  serverApi: serverApiRoutes({
    redis: httpRedis,
    roomLog: createRedisRoomLog(httpRedis, logOptions),
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
started = { httpServer, consumer };

httpServer.listen(config.PORT, config.HOST, () => {
  const { port } = httpServer.address() as AddressInfo;
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  log.info(
    { port, probePort: operations.port, stream: config.NOTIFIER_STREAM },
    `notifier is up at http://${host}:${port}/ (probes and metrics on port ${operations.port})`,
  );
});
