import type { Router } from "express";
import type { Cluster, Redis } from "ioredis";
import type { Registry } from "prom-client";
import { WEBHOOK_EVENTS_KEY, WEBHOOK_STREAM, WEBHOOK_STREAM_MAXLEN, type Logger } from "@chat/shared";
import type { NotifierConfig } from "./config.js";
import { webhookRoutes } from "./webhook-api.js";
import { deliverWebhooks } from "./webhook-delivery.js";
import { createWebhookMetrics } from "./webhook-metrics.js";

type WebhookConfig = Pick<
  NotifierConfig,
  | "WEBHOOK_URLS"
  | "WEBHOOK_SECRET"
  | "WEBHOOK_EVENTS"
  | "WEBHOOK_TIMEOUT_MS"
  | "WEBHOOK_MAX_ATTEMPTS"
  | "WEBHOOK_RETRY_BASE_MS"
  | "WEBHOOK_RETRY_MAX_MS"
  | "WEBHOOK_BATCH_SIZE"
  | "WEBHOOK_BATCH_MS"
>;

export interface Webhooks {
  /** `POST /v1/webhooks/replay`. */
  routes(v1: Router): void;
  /** A moderator deleted a message: `message.deleted`, when it is on. */
  deleted(room: string, messageId: string, entryId: string): void;
  stop(): Promise<void>;
}

/** How long the enabled events stay advertised to the chat pods without a notifier renewing them. */
const ADVERTISE_SECONDS = 60;

/**
 * The notifier's half of the webhooks: it tells the chat pods which events to add to the stream
 * (a key that expires when no notifier with webhooks runs, so pods then add none), and delivers
 * the stream to each endpoint (webhook-delivery.ts), on a Redis connection of its own.
 */
export function startWebhooks({
  config,
  redis,
  log,
  registry,
  consumer,
}: {
  config: WebhookConfig;
  redis: Redis | Cluster;
  log: Logger;
  registry: Registry;
  consumer: string;
}): Webhooks {
  const metrics = createWebhookMetrics(registry);
  const advertise = () =>
    redis
      .set(WEBHOOK_EVENTS_KEY, config.WEBHOOK_EVENTS.join(","), "EX", ADVERTISE_SECONDS)
      .catch((err: Error) => log.debug({ err: err.message }, "webhook events not advertised"));
  void advertise();
  const timer = setInterval(() => void advertise(), (ADVERTISE_SECONDS * 1000) / 3);
  timer.unref();
  const stops = config.WEBHOOK_URLS.map((url) =>
    deliverWebhooks({
      redis,
      log,
      metrics,
      url,
      secrets: config.WEBHOOK_SECRET,
      events: config.WEBHOOK_EVENTS,
      consumer,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
      retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: config.WEBHOOK_RETRY_MAX_MS,
      batchSize: config.WEBHOOK_BATCH_SIZE,
      batchMs: config.WEBHOOK_BATCH_MS,
    }),
  );
  log.info({ endpoints: config.WEBHOOK_URLS.length, events: config.WEBHOOK_EVENTS }, "webhooks on");
  return {
    routes: (v1) => webhookRoutes(v1, { redis, log, urls: config.WEBHOOK_URLS, redisReady: () => redis.status === "ready" }),
    deleted(room, messageId, entryId) {
      if (!config.WEBHOOK_EVENTS.includes("message.deleted")) return;
      const data = JSON.stringify({ messageId, entryId });
      redis
        .xadd(WEBHOOK_STREAM, "MAXLEN", "~", WEBHOOK_STREAM_MAXLEN, "*", "type", "message.deleted", "room", room, "data", data, "ts", Date.now())
        .catch((err: Error) => log.warn({ err: err.message }, "message.deleted not added"));
    },
    async stop() {
      clearInterval(timer);
      await Promise.all(stops.map((stop) => stop()));
    },
  };
}
