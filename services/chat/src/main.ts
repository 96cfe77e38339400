import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { connectRedis, createRedisClusterClient, redisTarget, runService, settleAuthMode, type RedisClient } from "@chat/shared";
import { createChatServer, type ChatServer } from "./app.js";
import { loadConfig } from "./config.js";

/** After the drain, how long connections get to finish their close handshakes before they are destroyed. */
const CLOSE_GRACE_MS = 500;

/** The composition root: what the chat connects to and builds; `runService` does the rest. */
await runService({
  name: "chat",
  loadConfig,
  connect(config, log) {
    const target = redisTarget(config);
    const settings = { username: config.REDIS_USERNAME, password: config.REDIS_PASSWORD, caFile: config.REDIS_TLS_CA_FILE, tls: config.REDIS_TLS };
    // On a Redis Cluster both are ioredis `Cluster`s; the subscriber subscribes on each channel's master.
    const connect = (role: string): RedisClient | undefined =>
      target && (target.kind === "cluster" ? createRedisClusterClient(target, settings, { role, log }) : connectRedis(target, settings, { role, log }));
    const pub = connect("pub");
    const sub = connect("sub");
    const redis = pub && sub && { pub, sub };
    if (!redis) log.warn("REDIS_URL is not set: running as a single node with the in-memory adapter");
    const instanceId = `${config.POD_NAME}-${randomBytes(3).toString("hex")}`;
    const registry = new Registry();
    let server: ChatServer | undefined;
    return {
      redis: redis?.pub,
      registry,
      // The drain paces its disconnects over DRAIN_SECONDS; closing what is left takes at most
      // CLOSE_GRACE_MS more. Whatever still hangs after that (Redis gone, say) is abandoned, so the
      // process exits 0 within SHUTDOWN_DELAY_SECONDS + DRAIN_SECONDS + 2 s, always.
      drainTimeoutMs: config.DRAIN_SECONDS * 1000 + 1200,
      // It names users (`@user:<id>`), sessions (`@jti:<jti>`) and rooms: off unless asked for.
      debug: config.DEBUG_ENDPOINTS ? { "/debug/bus": () => server?.bus?.describe() ?? { mode: redis ? "not known yet" : "single-node" } } : undefined,
      async start(busMode) {
        // A pod in another auth mode than the deployment's would let anyone in as anyone (issue 24 #10).
        if (redis) await settleAuthMode(redis.pub, config.AUTH_MODE, log);
        const chat = createChatServer({ config, log, redis, instanceId, busMode, registry });
        server = chat;
        return {
          httpServer: chat.httpServer,
          ready: () => chat.ready(),
          async drain() {
            await chat.drain(config.DRAIN_SECONDS);
            await chat.close(CLOSE_GRACE_MS);
          },
          upFields: { mode: redis ? "redis" : "single-node" },
          scheme: config.TLS_CERT_FILE ? "https" : "http",
        };
      },
      async close() {
        if (redis) await Promise.allSettled([redis.pub.quit(), redis.sub.quit()]);
      },
    };
  },
});
