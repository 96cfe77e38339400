import { Counter, Histogram, type Registry } from "prom-client";

export interface WebhookMetrics {
  /** Events by outcome: `delivered` (a 2xx), `retried` (sent again after a failed try), `failed` (in a failed try), `dead` (dead-lettered). */
  events: Counter<"result">;
  /** From an event entering the stream to the 2xx that delivered it. */
  latency: Histogram;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  return {
    events: new Counter({
      name: "notifier_webhook_events_total",
      help: "Webhook events by outcome: delivered, failed (in a failed try), retried, dead (dead-lettered).",
      labelNames: ["result"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "notifier_webhook_delivery_seconds",
      help: "Seconds from a webhook event entering the stream to its delivery (2xx).",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}
