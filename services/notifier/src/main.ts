import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError, createLogger, createRedisClient, createRedisRoomLog, isRedisReady } from "@chat/shared";
import { createNotifierApp } from "./app.js";
import { loadConfig, type NotifierConfig } from "./config.js";
import { createPublisher } from "./publisher.js";
import { startStreamConsumer } from "./stream.js";

/** The composition root: configuration, connections, listening and signals. */
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

// Two connections: the stream loop's blocking reads would otherwise hold up HTTP publishes.
const httpRedis = createRedisClient(config.REDIS_URL, { role: "http", log });
const streamRedis = createRedisClient(config.REDIS_URL, { role: "stream", log });
const logOptions = { maxEntries: config.HISTORY_MAX_ENTRIES, maxAgeSeconds: config.HISTORY_MAX_AGE_SECONDS };
const publisherFor = (redis: typeof httpRedis) =>
  createPublisher(redis, {
    dedupeWindowSeconds: config.NOTIFIER_DEDUPE_WINDOW_SECONDS,
    roomLog: createRedisRoomLog(redis, logOptions),
  });

const app = createNotifierApp({
  config,
  log,
  publisher: publisherFor(httpRedis),
  redisReady: () => isRedisReady(httpRedis),
});
const httpServer = createServer(app);

const consumer = startStreamConsumer({
  redis: streamRedis,
  publisher: publisherFor(streamRedis),
  log,
  stream: config.NOTIFIER_STREAM,
  group: config.NOTIFIER_GROUP,
  consumer: `${config.POD_NAME}-${randomBytes(3).toString("hex")}`,
  batchSize: config.NOTIFIER_BATCH_SIZE,
  blockMs: config.NOTIFIER_BLOCK_MS,
  claimIdleMs: config.NOTIFIER_CLAIM_IDLE_MS,
  maxDataBytes: config.NOTIFIER_MAX_DATA_BYTES,
});

httpServer.listen(config.PORT, config.HOST, () => {
  const { port } = httpServer.address() as AddressInfo;
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  log.info({ port, stream: config.NOTIFIER_STREAM }, `notifier is up at http://${host}:${port}/`);
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutting down");
  await consumer.stop();
  await new Promise<void>((resolve) => {
    httpServer.close(() => resolve());
    // Keep-alive connections would hold close() open; requests in flight still finish.
    httpServer.closeIdleConnections();
  });
  await Promise.allSettled([httpRedis.quit(), streamRedis.quit()]);
  log.info("bye");
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
