import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { ConfigError, createLogger, createRedisClient } from "@chat/shared";
import { createChatServer } from "./app.js";
import { loadConfig, type ChatConfig } from "./config.js";

/** The composition root: configuration, connections, listening and signals. */
function configure(): ChatConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`chat: ${err.message}`);
    process.exit(1);
  }
}

const config = configure();
const log = createLogger({ service: "chat", pod: config.POD_NAME, level: config.LOG_LEVEL });

// Last line of defence: a rejected promise from a library (a publish during a Redis outage, say)
// is logged, never allowed to take every client of this pod down.
process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));

const redis = config.REDIS_URL
  ? {
      pub: createRedisClient(config.REDIS_URL, { role: "pub", log }),
      sub: createRedisClient(config.REDIS_URL, { role: "sub", log }),
    }
  : undefined;
if (!redis) log.warn("REDIS_URL is not set: running as a single node with the in-memory adapter");

const instanceId = `${config.POD_NAME}-${randomBytes(3).toString("hex")}`;
const server = createChatServer({ config, log, redis, instanceId });

server.httpServer.listen(config.PORT, config.HOST, () => {
  const { port } = server.httpServer.address() as AddressInfo;
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  log.info({ port, mode: redis ? "redis" : "single-node" }, `chat is up at http://${host}:${port}/`);
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutting down");
  await server.close();
  if (redis) await Promise.allSettled([redis.pub.quit(), redis.sub.quit()]);
  log.info("bye");
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
