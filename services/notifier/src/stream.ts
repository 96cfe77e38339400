import type { Redis } from "ioredis";
import type { Logger } from "@chat/shared";
import { parseStreamEntry, type NotifierEvent } from "./events.js";
import type { NotifierMetrics } from "./metrics.js";
import type { Publisher } from "./publisher.js";

export interface StreamConsumerOptions {
  /** A connection of its own: a blocking read holds it for up to `blockMs`. */
  redis: Redis;
  /** Publishes through `redis`. */
  publisher: Publisher;
  log: Logger;
  stream: string;
  group: string;
  /** Unique per process, so a restart never silently inherits a dead consumer's entries. */
  consumer: string;
  batchSize: number;
  blockMs: number;
  claimIdleMs: number;
  maxDataBytes: number;
  metrics: NotifierMetrics;
}

export interface StreamConsumer {
  /** Lets the batch in flight finish (acked), then resolves; a pending blocking read is cut. */
  stop(): Promise<void>;
}

/** Dead letters are for people to look at, not an archive: the oldest go past this many. */
const DEAD_LETTER_MAXLEN = 10_000;
/** A consumer with nothing pending and idle this long is gone; it is removed from the group. */
const STALE_CONSUMER_MS = 10 * 60_000;

type Entry = [id: string, fields: string[] | null];

const delay = (ms: number, cancel: Promise<void>) =>
  Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), cancel]);

/**
 * Reads the stream through a consumer group: each entry goes to one replica, is published, then
 * acked. A replica that dies leaves its entries pending; another claims them with XAUTOCLAIM once
 * they have been idle for `claimIdleMs`. The dedupe key written atomically with each publish
 * makes any redelivery a no-op, so delivery is exactly once. Errors never leave this loop: it
 * backs off and resumes when Redis does.
 */
export function startStreamConsumer(options: StreamConsumerOptions): StreamConsumer {
  const { redis, publisher, log, stream, group, consumer, batchSize, claimIdleMs, maxDataBytes, metrics } = options;
  const deadStream = `${stream}:dead`;
  // Claiming at half the idle time bounds how late a dead replica's entries are picked up.
  const claimEveryMs = Math.max(50, Math.floor(claimIdleMs / 2));
  const blockMs = Math.min(options.blockMs, claimEveryMs);

  let stopping = false;
  let signalStop!: () => void;
  const stopped = new Promise<void>((resolve) => (signalStop = resolve));
  let reading = false;

  async function ensureGroup(): Promise<void> {
    try {
      // From 0, not $: entries queued before the first notifier ever started are delivered too.
      await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
      log.info({ stream, group }, "consumer group created");
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  /** Moves and acks in one transaction: a malformed entry is never retried, nor lost. */
  async function deadLetter(malformed: { entryId: string; reason: string; fields: string[] }[]): Promise<void> {
    const tx = redis.multi();
    for (const { entryId, reason, fields } of malformed) {
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < fields.length; i += 2) pairs.push([fields[i]!, fields[i + 1]!]);
      tx.xadd(deadStream, "MAXLEN", "~", DEAD_LETTER_MAXLEN, "*", "entry", entryId, "reason", reason, "fields", JSON.stringify(pairs));
    }
    tx.xack(stream, group, ...malformed.map((m) => m.entryId));
    const results = await tx.exec();
    const failure = results ? results.find(([err]) => err)?.[0] : new Error("dead-letter transaction aborted");
    if (failure) throw failure;
    metrics.deadLettered(malformed.length);
    for (const { entryId, reason } of malformed) {
      log.warn({ entry: entryId, reason, deadStream }, "malformed stream entry moved to dead letters");
    }
  }

  async function handle(entries: Entry[], source: string): Promise<void> {
    const events: { entryId: string; event: NotifierEvent }[] = [];
    const done: string[] = [];
    const malformed: { entryId: string; reason: string; fields: string[] }[] = [];
    for (const [entryId, fields] of entries) {
      // Trimmed away while pending: there is nothing left to deliver.
      if (fields === null) done.push(entryId);
      else {
        const parsed = parseStreamEntry(entryId, fields, maxDataBytes);
        if (parsed.ok) events.push({ entryId, event: parsed.value });
        else malformed.push({ entryId, reason: parsed.reason, fields });
      }
    }
    if (malformed.length) await deadLetter(malformed);

    const results = await publisher.publishMany(events.map((e) => e.event));
    let failures = 0;
    for (const [i, result] of results.entries()) {
      if (result instanceof Error) failures++;
      else done.push(events[i]!.entryId);
      if (result === false) log.debug({ id: events[i]!.event.id, entry: events[i]!.entryId }, "duplicate event id: acked only");
    }
    if (done.length) await redis.xack(stream, group, ...done);
    log.debug({ source, count: entries.length, published: events.length - failures, dead: malformed.length }, "stream batch");
    // Unpublished entries stay pending: they are read again from this consumer's history below.
    metrics.count("stream", "accepted", events.length);
    metrics.count("stream", "delivered", results.filter((r) => r === true).length);
    metrics.count("stream", "duplicate", results.filter((r) => r === false).length);
    metrics.count("stream", "failed", failures);
    if (failures) throw new Error(`${failures} stream event(s) not published`);
  }

  /** This consumer's own pending entries, from `cursor` on: a batch that failed midway. */
  async function readOwnHistory(cursor: string): Promise<Entry[]> {
    const reply = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", batchSize, "STREAMS", stream, cursor)) as
      | [string, Entry[]][]
      | null;
    return reply?.[0]?.[1] ?? [];
  }

  async function readNew(): Promise<Entry[]> {
    // Checked in the same tick as the read is sent, so stop() either sees `reading` or we see it.
    if (stopping) return [];
    reading = true;
    try {
      const reply = (await redis.xreadgroup(
        "GROUP", group, consumer, "COUNT", batchSize, "BLOCK", blockMs, "STREAMS", stream, ">",
      )) as [string, Entry[]][] | null;
      return reply?.[0]?.[1] ?? [];
    } finally {
      reading = false;
    }
  }

  async function claim(cursor: string): Promise<[string, Entry[]]> {
    const [next, entries] = (await redis.xautoclaim(stream, group, consumer, claimIdleMs, cursor, "COUNT", batchSize)) as [
      string,
      Entry[],
    ];
    if (entries.length) log.info({ count: entries.length }, "claimed entries a dead consumer left pending");
    return [next, entries];
  }

  /** Removes consumers that have been gone for long and hold nothing, so restarts don't pile up. */
  async function reapStaleConsumers(): Promise<void> {
    const infos = (await redis.xinfo("CONSUMERS", stream, group)) as (string | number)[][];
    for (const info of infos) {
      const fields = new Map<string, string | number>();
      for (let i = 0; i + 1 < info.length; i += 2) fields.set(String(info[i]), info[i + 1]!);
      const name = String(fields.get("name"));
      if (name !== consumer && fields.get("pending") === 0 && Number(fields.get("idle")) > STALE_CONSUMER_MS) {
        await redis.xgroup("DELCONSUMER", stream, group, name);
        log.info({ consumer: name }, "removed a stale consumer");
      }
    }
  }

  async function run(): Promise<void> {
    let groupReady = false;
    let history: string | undefined; // set while re-reading our own pending entries
    let claimCursor = "0-0";
    let lastClaimPass = 0;
    let lastReap = 0;
    let failing = false;
    let backoffMs = 100;
    while (!stopping) {
      try {
        if (!groupReady) {
          await ensureGroup();
          groupReady = true;
        }
        if (history !== undefined) {
          const entries = await readOwnHistory(history);
          if (entries.length === 0) history = undefined;
          else {
            history = entries.at(-1)![0];
            await handle(entries, "history");
          }
        } else if (claimCursor !== "0-0" || Date.now() - lastClaimPass >= claimEveryMs) {
          const [next, entries] = await claim(claimCursor);
          claimCursor = next;
          if (next === "0-0") lastClaimPass = Date.now();
          await handle(entries, "claimed");
          if (Date.now() - lastReap >= 60_000) {
            lastReap = Date.now();
            await reapStaleConsumers();
          }
        } else {
          const entries = await readNew();
          if (!stopping || entries.length) await handle(entries, "new");
        }
        if (failing) log.info("stream consumer resumed");
        failing = false;
        backoffMs = 100;
      } catch (err) {
        if (stopping) break;
        const message = (err as Error).message;
        if (/NOGROUP/.test(message)) groupReady = false; // the stream or group was deleted (or Redis lost it)
        history = "0";
        if (!failing) log.warn({ err: message, retryInMs: backoffMs }, "stream consumer failing; backing off");
        else log.debug({ err: message }, "stream consumer still failing");
        failing = true;
        await delay(backoffMs, stopped);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  }

  const loop = run().catch((err: unknown) => log.error({ err }, "stream consumer stopped unexpectedly"));
  log.info({ stream, group, consumer }, "stream consumer started");

  return {
    async stop() {
      stopping = true;
      signalStop();
      // A blocking read would hold shutdown for up to blockMs. Cutting the connection is safe: any
      // entry handed out in that instant stays pending and is claimed by another replica.
      if (reading) redis.disconnect();
      await loop;
    },
  };
}
