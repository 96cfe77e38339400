import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { WEBHOOK_STREAM, deadLetterStreamOf, type Logger, type WebhookEventType } from "@chat/shared";
import type { WebhookMetrics } from "./webhook-metrics.js";
import { signature } from "./webhook-sign.js";

export interface WebhookDeliveryOptions {
  redis: Redis | Cluster;
  log: Logger;
  metrics: WebhookMetrics;
  url: string;
  secrets: string[];
  events: WebhookEventType[];
  /** This replica's consumer name in the endpoint's group. */
  consumer: string;
  timeoutMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  batchSize: number;
  batchMs: number;
  /**
   * How long the delivering replica's lease lasts without renewal; a replica that dies mid-batch
   * is replaced after this, and its batch delivered again by the next one.
   * @default 3000
   */
  leaseMs?: number;
}

/** One event as a request carries it. */
export interface WebhookEvent {
  id: string;
  type: string;
  room: string;
  ts: number;
  data: unknown;
}

type Entry = [id: string, fields: string[]];

/** Each endpoint has a consumer group and a lease of its own, named after the URL's hash. */
export const endpointId = (url: string): string => createHash("sha256").update(url).digest("hex").slice(0, 12);

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** The event of a stream entry; undefined when malformed. Its id is the entry's, or the original's for a replayed dead letter. */
function toEvent([entryId, fields]: Entry): WebhookEvent | undefined {
  const type = field(fields, "type");
  const room = field(fields, "room");
  if (!type || room === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(field(fields, "data") ?? "{}");
  } catch {
    return undefined;
  }
  return { id: field(fields, "id") ?? `evt_${entryId}`, type, room, ts: Number(field(fields, "ts") ?? entryId.split("-")[0]), data };
}

/** Renews the lease when this replica holds it, takes it when free: 1 when held. */
const LEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

class Outcome {
  constructor(
    readonly retry: boolean,
    readonly reason: string,
  ) {}
}

/**
 * Delivers the webhook stream to one endpoint, at least once and in stream order (so in order per
 * room). One replica delivers at a time: it holds a lease in Redis, renewed as it goes; the others
 * wait for it to lapse. The stream is read through a consumer group, so what a replica read and did
 * not deliver stays pending; the next lease holder claims it and delivers it first. A batch is
 * retried with exponential backoff on 5xx, 408, 429, timeouts and refused connections; after
 * `maxAttempts` its events go to the dead letters. Returns the function that stops it.
 */
export function deliverWebhooks(options: WebhookDeliveryOptions): () => Promise<void> {
  const { redis, log, metrics, url, secrets, consumer, batchSize, batchMs, leaseMs = 3000 } = options;
  const endpoint = endpointId(url);
  const group = `webhooks:${endpoint}`;
  const leaseKey = `chat:webhooks:lease:${endpoint}`;
  // `WEBHOOK_DEAD_STREAM` on one server; on a cluster in the webhook stream's slot, since one MULTI moves and acks.
  const deadStream = deadLetterStreamOf(WEBHOOK_STREAM, { cluster: redis.isCluster });
  const wanted = new Set<string>(options.events);
  let stopped = false;
  let leader = false;
  let grouped = false;
  // Waits end early on stop, so that a backoff of many seconds does not hold up a shutdown.
  const wakers = new Set<() => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakers.add(done);
    });
  // Renewed while a request is under way too: a slow endpoint must not hand the lease to another replica.
  const renewal = setInterval(() => {
    if (!leader || stopped) return;
    redis.eval(LEASE_SCRIPT, 1, leaseKey, consumer, leaseMs).then(
      (held) => held === 1 || (leader = false),
      () => undefined,
    );
  }, leaseMs / 3);
  renewal.unref();

  async function holdLease(): Promise<boolean> {
    const held = (await redis.eval(LEASE_SCRIPT, 1, leaseKey, consumer, leaseMs)) === 1;
    if (held && !leader) {
      // What the last holder read and did not deliver is delivered first, in order.
      let cursor = "0-0";
      do {
        const [next] = (await redis.xautoclaim(WEBHOOK_STREAM, group, consumer, 0, cursor, "COUNT", 1000, "JUSTID")) as [string, ...unknown[]];
        cursor = next;
      } while (cursor !== "0-0");
    }
    leader = held;
    return held;
  }

  async function ensureGroup(): Promise<void> {
    if (grouped) return;
    try {
      // From the end: an endpoint added later gets what happens from then on.
      await redis.xgroup("CREATE", WEBHOOK_STREAM, group, "$", "MKSTREAM");
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
    grouped = true;
  }

  async function read(id: string, count: number): Promise<Entry[]> {
    const reply = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", count, "STREAMS", WEBHOOK_STREAM, id)) as [string, Entry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  /** This replica's pending entries first; else new ones, waiting up to `batchMs` after the first for a fuller batch. */
  async function nextBatch(): Promise<Entry[]> {
    const pending = await read("0", batchSize);
    if (pending.length) return pending;
    const batch = await read(">", batchSize);
    if (!batch.length) return batch;
    const until = Date.now() + batchMs;
    while (batch.length < batchSize && Date.now() < until && !stopped) {
      await sleep(Math.min(25, until - Date.now()));
      batch.push(...(await read(">", batchSize - batch.length)));
    }
    return batch;
  }

  async function post(events: WebhookEvent[], attempt: number): Promise<Outcome | undefined> {
    const body = JSON.stringify({ events });
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "chat-notifier-webhooks/1",
          "x-chat-signature": signature(body, secrets),
          // The same for every try of this batch: the events' ids, hashed.
          "idempotency-key": createHash("sha256")
            .update(events.map((e) => e.id).join(","))
            .digest("hex")
            .slice(0, 32),
          "x-chat-attempt": String(attempt),
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
        redirect: "error",
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return undefined;
      const retry = response.status >= 500 || response.status === 408 || response.status === 429;
      return new Outcome(retry, `HTTP ${response.status}`);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return new Outcome(true, e.name === "TimeoutError" ? `timed out after ${options.timeoutMs} ms` : (e.cause?.code ?? e.message));
    }
  }

  async function deadLetter(entries: Entry[], events: WebhookEvent[], reason: string, attempts: number): Promise<void> {
    const multi = redis.multi();
    for (const event of events) {
      multi.xadd(
        deadStream,
        "MAXLEN",
        "~",
        100_000,
        "*",
        "url",
        url,
        "id",
        event.id,
        "type",
        event.type,
        "room",
        event.room,
        "data",
        JSON.stringify(event.data),
        "ts",
        event.ts,
        "reason",
        reason,
        "attempts",
        attempts,
      );
    }
    multi.xack(WEBHOOK_STREAM, group, ...entries.map(([id]) => id));
    await multi.exec();
    metrics.events.inc({ result: "dead" }, events.length);
    log.warn({ url, events: events.length, reason, attempts }, "webhook events dead-lettered");
  }

  async function deliver(entries: Entry[]): Promise<void> {
    // Entries for another endpoint (a replay) or a type this one does not take are acked unsent.
    const events: WebhookEvent[] = [];
    for (const entry of entries) {
      const only = field(entry[1], "only");
      const event = toEvent(entry);
      if (!event) log.debug({ entry: entry[0] }, "malformed webhook entry dropped");
      else if ((only === undefined || only === url) && wanted.has(event.type)) events.push(event);
    }
    const ids = entries.map(([id]) => id);
    if (!events.length) {
      await redis.xack(WEBHOOK_STREAM, group, ...ids);
      return;
    }
    for (let attempt = 1; !stopped; attempt++) {
      if (attempt > 1) metrics.events.inc({ result: "retried" }, events.length);
      const failure = await post(events, attempt);
      if (!failure) {
        await redis.xack(WEBHOOK_STREAM, group, ...ids);
        metrics.events.inc({ result: "delivered" }, events.length);
        const now = Date.now();
        for (const event of events) metrics.latency.observe(Math.max(0, now - event.ts) / 1000);
        return;
      }
      metrics.events.inc({ result: "failed" }, events.length);
      if (!failure.retry || attempt >= options.maxAttempts) return deadLetter(entries, events, failure.reason, attempt);
      const wait = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      log.info({ url, events: events.length, attempt, reason: failure.reason, retryInMs: Math.round(wait) }, "webhook delivery failed; retrying");
      await sleep(wait);
      // A replica that lost its lease meanwhile (stalled, or cut off) leaves the batch pending for the new holder.
      if (!(await holdLease())) return;
    }
  }

  const running = (async () => {
    while (!stopped) {
      try {
        await ensureGroup();
        if (!(await holdLease())) {
          await sleep(leaseMs / 3);
          continue;
        }
        const batch = await nextBatch();
        if (batch.length) await deliver(batch);
        else await sleep(50);
      } catch (err) {
        // The group is created again should Redis have lost it (a restart without persistence).
        grouped = false;
        log.warn({ url, err: (err as Error).message }, "webhook delivery loop error");
        await sleep(1000);
      }
    }
  })();

  return async () => {
    stopped = true;
    clearInterval(renewal);
    for (const wake of [...wakers]) wake();
    await running;
    // Let another replica take over at once.
    if (leader)
      await redis
        .eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1, leaseKey, consumer)
        .catch(() => undefined);
  };
}
