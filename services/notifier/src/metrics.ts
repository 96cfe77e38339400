import type { Cluster, Redis } from "ioredis";
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { pairsOf } from "@chat/shared";

export type Intake = "http" | "stream";
export type Outcome = "accepted" | "delivered" | "duplicate" | "failed";

/** The notifier's Prometheus metrics; labels are intakes, outcomes and routes, never ids. */
export interface NotifierMetrics {
  registry: Registry;
  /** Counts `n` events of `intake` that reached `outcome`. */
  count(intake: Intake, outcome: Outcome, n?: number): void;
  deadLettered(n: number): void;
  /** HTTP calls refused by the per-key rate limit. */
  rateLimited: Counter;
  /** Times every HTTP request, by method, route template and status. */
  httpTimer: RequestHandler;
  /** Mounted first in each router: remembers the router's mount path for `httpTimer`. */
  routePrefix: RequestHandler;
}

export function createNotifierMetrics(redis: Redis | Cluster, stream: string, group: string): NotifierMetrics {
  const registry = new Registry();
  const counters = outcomeCounters(registry);
  const rateLimited = new Counter({
    name: "notifier_rate_limited_total",
    help: "HTTP API calls refused with 429 by the per-key rate limit.",
    registers: [registry],
  });
  const deadLetters = new Counter({
    name: "notifier_dead_letters_total",
    help: "Malformed stream entries, and entries the encoder refuses, moved to the dead-letter stream.",
    registers: [registry],
  });

  registerLagGauges(registry, redis, stream, group);

  const duration = new Histogram({
    name: "notifier_http_request_duration_seconds",
    help: "HTTP API requests, by method, route template and status.",
    labelNames: ["method", "route", "status"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });

  return {
    registry,
    rateLimited,
    count(intake, outcome, n = 1) {
      if (n > 0) counters[outcome].inc({ intake }, n);
    },
    deadLettered(n) {
      if (n > 0) deadLetters.inc(n);
    },
    routePrefix(req, res, next) {
      res.locals.routePrefix = req.baseUrl;
      next();
    },
    httpTimer(req, res, next) {
      const end = duration.startTimer({ method: req.method });
      res.once("finish", () => {
        // The matched route's template (never the concrete path, which holds room and user ids).
        // The mount path as seen inside the router: by the time a response sent from an async
        // handler finishes, Express has already reset `req.baseUrl` to "" (`/broadcast` beside
        // `/v1/broadcast` for one route).
        const prefix = typeof res.locals.routePrefix === "string" ? res.locals.routePrefix : req.baseUrl;
        const path = (req.route as { path?: string } | undefined)?.path;
        const route = path ? `${prefix}${path}` : "unmatched";
        end({ route, status: String(res.statusCode) });
      });
      next();
    },
  };
}

/** One counter per outcome, each by intake. */
function outcomeCounters(registry: Registry): Record<Outcome, Counter<"intake">> {
  return {
    accepted: new Counter({ name: "notifier_events_accepted_total", help: "Valid events taken in, by intake.", labelNames: ["intake"], registers: [registry] }),
    delivered: new Counter({
      name: "notifier_events_delivered_total",
      help: "Events published to the chat pods, by intake.",
      labelNames: ["intake"],
      registers: [registry],
    }),
    duplicate: new Counter({
      name: "notifier_events_duplicate_total",
      help: "Events whose id was already delivered within the window, by intake.",
      labelNames: ["intake"],
      registers: [registry],
    }),
    failed: new Counter({
      name: "notifier_events_failed_total",
      help: "Events that could not be published (Redis unavailable), by intake.",
      labelNames: ["intake"],
      registers: [registry],
    }),
  };
}

/** The consumer group's lag, read from Redis at scrape time; a failed read keeps the last values. */
function registerLagGauges(registry: Registry, redis: Redis | Cluster, stream: string, group: string): void {
  const lag = { pending: 0, undelivered: 0, oldestSeconds: 0 };
  const refreshLag = async () => {
    try {
      Object.assign(lag, await readLag(redis, stream, group));
    } catch {
      // Redis away or the group not created yet: nothing new to report.
    }
  };
  new Gauge({
    name: "notifier_stream_pending_entries",
    help: "Entries handed to a consumer and not acked yet.",
    registers: [registry],
    async collect() {
      await refreshLag();
      this.set(lag.pending);
    },
  });
  new Gauge({
    name: "notifier_stream_lag_entries",
    help: "Entries in the stream not yet read by the consumer group.",
    registers: [registry],
    collect() {
      this.set(lag.undelivered);
    },
  });
  new Gauge({
    name: "notifier_stream_oldest_age_seconds",
    help: "Age of the oldest entry pending or not yet read; 0 when caught up.",
    registers: [registry],
    collect() {
      this.set(lag.oldestSeconds);
    },
  });
}

async function readLag(redis: Redis | Cluster, stream: string, group: string): Promise<{ pending: number; undelivered: number; oldestSeconds: number }> {
  const groups = (await redis.xinfo("GROUPS", stream)) as (string | number | null)[][];
  const info = groups.map((g) => new Map(pairsOf(g))).find((g) => g.get("name") === group);
  if (!info) return { pending: 0, undelivered: 0, oldestSeconds: 0 };
  const pending = Number(info.get("pending") ?? 0);
  const undelivered = Number(info.get("lag") ?? 0);
  let oldest: string | undefined;
  if (pending > 0) {
    const summary = (await redis.xpending(stream, group)) as [number, string | null, ...unknown[]];
    oldest = summary[1] ?? undefined;
  } else if (undelivered > 0) {
    const next = await redis.xrange(stream, `(${String(info.get("last-delivered-id"))}`, "+", "COUNT", 1);
    oldest = next[0]?.[0];
  }
  const oldestSeconds = oldest ? Math.max(0, Date.now() - Number(oldest.split("-")[0])) / 1000 : 0;
  return { pending, undelivered, oldestSeconds };
}
