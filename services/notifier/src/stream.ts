import type { Redis } from "ioredis";
import { UnencodableError, type Logger } from "@chat/shared";
import { parseStreamEntry, type DataLimits, type NotifierEvent } from "./events.js";
import type { NotifierMetrics } from "./metrics.js";
import type { Publisher } from "./publisher.js";
import { createStreamReader, type ReadBatch, type ReadEntry } from "./stream-read.js";

export interface StreamConsumerOptions {
  redis: Redis;
  /** Publishes through `redis`. */
  publisher: Publisher;
  log: Logger;
  stream: string;
  group: string;
  /** Unique per process, so a restart never silently inherits a dead consumer's entries. */
  consumer: string;
  /** Entries read or claimed per round trip. */
  batchSize: number;
  /** Bytes of entries read or claimed per round trip (at least one entry). */
  batchBytes: number;
  /** Longest wait between two reads that found nothing new (the wait doubles from 5 ms up to it). */
  pollMs: number;
  claimIdleMs: number;
  data: DataLimits;
  metrics: NotifierMetrics;
}

export interface StreamConsumer {
  /** Lets the batch in flight finish (acked), then resolves. */
  stop(): Promise<void>;
}

/** Dead letters are for people to look at, not an archive: the oldest go past this many. */
const DEAD_LETTER_MAXLEN = 10_000;
/** The first wait after a read that found nothing; it doubles up to `pollMs`. */
const IDLE_FIRST_WAIT_MS = 5;
/** A consumer with nothing pending and idle this long is gone; it is removed from the group. */
const STALE_CONSUMER_MS = 10 * 60_000;

/**
 * A dead letter shows what was wrong, not an archive of the entry (its id is there, and the
 * stream still holds it until trimmed): each name and value is cut to this many characters.
 */
const DEAD_LETTER_VALUE_CHARS = 2048;

interface Malformed {
  entryId: string;
  reason: string;
  fields: [string, string][];
}

/** The entry's fields for its dead letter: each cut short, saying how long it really was. */
function deadLetterFields({ fields, sizes }: ReadEntry): [string, string][] {
  const pairs: [string, string][] = [];
  const flat = fields ?? [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.slice(0, 64);
    const value = flat[i + 1]!;
    const size = sizes[i / 2] ?? Buffer.byteLength(value);
    const cut = value.length > DEAD_LETTER_VALUE_CHARS || size > Buffer.byteLength(value);
    pairs.push([name, cut ? `${value.slice(0, DEAD_LETTER_VALUE_CHARS)}… (${size} bytes in all)` : value]);
  }
  return pairs;
}

const delay = (ms: number, cancel: Promise<void>) => Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), cancel]);

/**
 * Reads the stream through a consumer group: each entry goes to one replica, is published, then
 * acked. A replica that dies leaves its entries pending; another claims them with XAUTOCLAIM once
 * they have been idle for `claimIdleMs`. The dedupe key written atomically with each publish
 * makes any redelivery a no-op, so delivery is exactly once. Errors never leave this loop: it
 * backs off and resumes when Redis does.
 */
export function startStreamConsumer(options: StreamConsumerOptions): StreamConsumer {
  const { redis, publisher, log, stream, group, consumer, batchSize, claimIdleMs, data, metrics } = options;
  const deadStream = `${stream}:dead`;
  // Claiming at half the idle time bounds how late a dead replica's entries are picked up.
  const claimEveryMs = Math.max(50, Math.floor(claimIdleMs / 2));
  // Values up to the data limit come whole (the other valid fields are short); longer ones are
  // cut in Redis and dead-lettered by their real size.
  const reader = createStreamReader(redis, {
    stream,
    group,
    consumer,
    count: batchSize,
    budget: options.batchBytes,
    cap: Math.max(data.maxBytes, DEAD_LETTER_VALUE_CHARS),
  });

  let stopping = false;
  let signalStop!: () => void;
  const stopped = new Promise<void>((resolve) => (signalStop = resolve));

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
  async function deadLetter(malformed: Malformed[]): Promise<void> {
    const tx = redis.multi();
    for (const { entryId, reason, fields } of malformed) {
      tx.xadd(deadStream, "MAXLEN", "~", DEAD_LETTER_MAXLEN, "*", "entry", entryId, "reason", reason, "fields", JSON.stringify(fields));
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

  async function handle(entries: ReadEntry[], source: string): Promise<void> {
    const events: { entry: ReadEntry; event: NotifierEvent }[] = [];
    const done: string[] = [];
    const malformed: Malformed[] = [];
    for (const entry of entries) {
      // Trimmed away while pending: there is nothing left to deliver.
      if (entry.fields === null) done.push(entry.id);
      else {
        const parsed =
          entry.fieldCount * 2 > entry.fields.length
            ? { ok: false as const, reason: `${entry.fieldCount} fields: an entry has at most 4 (a target, type, data, id)` }
            : parseStreamEntry(entry.id, entry.fields, data, entry.sizes);
        if (parsed.ok) events.push({ entry, event: parsed.value });
        else malformed.push({ entryId: entry.id, reason: parsed.reason, fields: deadLetterFields(entry) });
      }
    }
    if (malformed.length) await deadLetter(malformed);

    const results = await publisher.publishMany(events.map((e) => e.event));
    let failures = 0;
    // An event the encoder refuses would fail the same way on every retry, on every replica, and
    // hold up everything behind it: it is dead-lettered like a malformed entry.
    const poison: Malformed[] = [];
    for (const [i, result] of results.entries()) {
      const { entry, event } = events[i]!;
      if (result instanceof UnencodableError) poison.push({ entryId: entry.id, reason: `data: ${result.message}`, fields: deadLetterFields(entry) });
      else if (result instanceof Error) failures++;
      else done.push(entry.id);
      if (result === false) log.debug({ id: event.id, entry: entry.id }, "duplicate event id: acked only");
    }
    if (poison.length) await deadLetter(poison);
    if (done.length) await redis.xack(stream, group, ...done);
    log.debug({ source, count: entries.length, published: events.length - failures - poison.length, dead: malformed.length + poison.length }, "stream batch");
    // Unpublished entries stay pending: they are read again from this consumer's history below.
    metrics.count("stream", "accepted", events.length - poison.length);
    metrics.count("stream", "delivered", results.filter((r) => r === true).length);
    metrics.count("stream", "duplicate", results.filter((r) => r === false).length);
    metrics.count("stream", "failed", failures);
    if (failures) throw new Error(`${failures} stream event(s) not published`);
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
    let idleMs = 0;
    while (!stopping) {
      try {
        if (!groupReady) {
          await ensureGroup();
          groupReady = true;
        }
        // A batch the byte budget cut short left the rest pending to us: read our history next.
        const continueAfter = (batch: ReadBatch) => (batch.more ? batch.entries.at(-1)!.id : undefined);
        if (history !== undefined) {
          const batch = await reader.read(history);
          if (batch.entries.length === 0) history = undefined;
          else {
            history = batch.entries.at(-1)!.id;
            await handle(batch.entries, "history");
          }
        } else if (claimCursor !== "0-0" || Date.now() - lastClaimPass >= claimEveryMs) {
          const batch = await reader.claim(claimCursor, claimIdleMs);
          claimCursor = batch.cursor!;
          if (claimCursor === "0-0") lastClaimPass = Date.now();
          if (batch.entries.length) log.info({ count: batch.entries.length }, "claimed entries a dead consumer left pending");
          history = continueAfter(batch);
          await handle(batch.entries, "claimed");
          if (Date.now() - lastReap >= 60_000) {
            lastReap = Date.now();
            await reapStaleConsumers();
          }
        } else {
          // Polled, not a blocking XREADGROUP: a blocking read would hand over whole entries,
          // whatever their size, where the script sends a bounded part of them.
          // The wait doubles while the stream stays idle, so an idle replica costs little, and
          // starts again at nothing as soon as entries come.
          const batch = await reader.read(">");
          history = continueAfter(batch);
          idleMs = batch.entries.length ? 0 : Math.min(options.pollMs, Math.max(IDLE_FIRST_WAIT_MS, idleMs * 2));
          if (batch.entries.length) await handle(batch.entries, "new");
          else await delay(idleMs, stopped);
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
      await loop;
    },
  };
}
