import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import {
  ConfigError,
  ProbeFailure,
  createLogger,
  describeListenError,
  connectRedis,
  redisTarget,
  settleAuthMode,
  settleBusMode,
  startOperations,
} from "@chat/shared";
import { createChatServer, type ChatServer } from "./app.js";
import { loadConfig, type ChatConfig } from "./config.js";

/** The composition root: configuration, connections, probes, listening and shutdown. */
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
/** After the drain, how long connections get to finish their close handshakes before they are destroyed. */
const CLOSE_GRACE_MS = 500;
const log = createLogger({ service: "chat", pod: config.POD_NAME, level: config.LOG_LEVEL });

// Last line of defence: a rejected promise from a library (a publish during a Redis outage, say)
// is logged, never allowed to take every client of this pod down.
process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));

const target = redisTarget(config);
if (target?.kind === "cluster") {
  console.error("chat: REDIS_CLUSTER_NODES: Redis Cluster is not supported by the chat yet (see README, Message bus); use REDIS_URL or REDIS_SENTINELS");
  process.exit(1);
}
const redisSettings = { username: config.REDIS_USERNAME, password: config.REDIS_PASSWORD, caFile: config.REDIS_TLS_CA_FILE, tls: config.REDIS_TLS };
const redis = target && {
  pub: connectRedis(target, redisSettings, { role: "pub", log }),
  sub: connectRedis(target, redisSettings, { role: "sub", log }),
};
if (!redis) log.warn("REDIS_URL is not set: running as a single node with the in-memory adapter");

const instanceId = `${config.POD_NAME}-${randomBytes(3).toString("hex")}`;
const registry = new Registry();
// Built once the bus mode is known, which Redis keeps: meanwhile the probes run and say why the
// pod is not ready yet.
let server: ChatServer | undefined;

/** A port that cannot be opened ends the process with one line naming its variable. */
function cannotListen(variable: string, port: number) {
  return (err: NodeJS.ErrnoException): never => {
    console.error(`chat: ${describeListenError(variable, config.HOST, port, err)}`);
    process.exit(1);
  };
}

const operations = await startOperations({
  port: config.PROBE_PORT,
  host: config.HOST,
  log,
  registry,
  shutdownDelaySeconds: config.SHUTDOWN_DELAY_SECONDS,
  // The drain paces its disconnects over DRAIN_SECONDS; closing what is left takes at most
  // CLOSE_GRACE_MS more. Whatever still hangs after that (Redis gone, say) is abandoned, so the
  // process exits 0 within SHUTDOWN_DELAY_SECONDS + DRAIN_SECONDS + 2 s, always.
  drainTimeoutMs: config.DRAIN_SECONDS * 1000 + 1200,
  // It names users (`@user:<id>`), sessions (`@jti:<jti>`) and rooms: off unless asked for.
  debug: config.DEBUG_ENDPOINTS ? { "/debug/bus": () => server?.bus?.describe() ?? { mode: redis ? "not known yet" : "single-node" } } : undefined,
  ready() {
    if (!server) throw new ProbeFailure("waiting for Redis to learn the message bus mode");
    if (!server.ready()) throw new ProbeFailure("Redis is unreachable");
  },
  async drain() {
    if (server) {
      await server.drain(config.DRAIN_SECONDS);
      await server.close(CLOSE_GRACE_MS);
    }
    if (redis) await Promise.allSettled([redis.pub.quit(), redis.sub.quit()]);
  },
}).catch(cannotListen("PROBE_PORT", config.PROBE_PORT));

const busMode = redis && (await settleBusMode(redis.pub, config.BUS_MODE, log));
// A pod in another auth mode than the deployment's would let anyone in as anyone (issue 24 #10).
if (redis) await settleAuthMode(redis.pub, config.AUTH_MODE, log);
const chat = createChatServer({ config, log, redis, instanceId, busMode, registry });
server = chat;
chat.httpServer.once("error", cannotListen("PORT", config.PORT));
chat.httpServer.listen(config.PORT, config.HOST, () => {
  const { port } = chat.httpServer.address() as AddressInfo;
  const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
  log.info(
    { port, probePort: operations.port, mode: redis ? "redis" : "single-node" },
    `chat is up at ${config.TLS_CERT_FILE ? "https" : "http"}://${host}:${port}/ (probes and metrics on port ${operations.port})`,
  );
});
