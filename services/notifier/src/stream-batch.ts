import type { Cluster, Redis } from "ioredis";
import { UnencodableError, deadLetterStreamOf, pairsOf, type Logger } from "@chat/shared";
import { parseStreamEntry, type DataLimits, type NotifierEvent } from "./events.js";
import type { NotifierMetrics } from "./metrics.js";
import type { Publisher } from "./publisher.js";
import type { ReadEntry } from "./stream-read.js";

/** Dead letters are for people to look at, not an archive: the oldest go past this many. */
const DEAD_LETTER_MAXLEN = 10_000;

/**
 * A dead letter shows what was wrong, not an archive of the entry (its id is there, and the
 * stream still holds it until trimmed): each name and value is cut to this many characters.
 */
export const DEAD_LETTER_VALUE_CHARS = 2048;

interface Malformed {
  entryId: string;
  reason: string;
  fields: [string, string][];
}

/** The entry's fields for its dead letter: each cut short, saying how long it really was. */
function deadLetterFields({ fields, sizes }: ReadEntry): [string, string][] {
  return pairsOf(fields ?? []).map(([name, value], k) => {
    const size = sizes[k] ?? Buffer.byteLength(value);
    const cut = value.length > DEAD_LETTER_VALUE_CHARS || size > Buffer.byteLength(value);
    return [name.slice(0, 64), cut ? `${value.slice(0, DEAD_LETTER_VALUE_CHARS)}… (${size} bytes in all)` : value];
  });
}

/** Moves and acks in one transaction: a malformed entry is never retried, nor lost. */
async function moveToDeadLetters({ redis, stream, group, metrics, log }: BatchHandlerOptions, malformed: Malformed[]): Promise<void> {
  const deadStream = deadLetterStreamOf(stream, { cluster: redis.isCluster });
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

export interface BatchHandlerOptions {
  redis: Redis | Cluster;
  publisher: Publisher;
  log: Logger;
  stream: string;
  group: string;
  data: DataLimits;
  metrics: NotifierMetrics;
}

/**
 * Handles one batch of entries: malformed ones and events the encoder refuses are dead-lettered
 * (and acked), the others published and acked. Throws when some could not be published: they
 * stay pending, and the consumer reads them again.
 */
export function createBatchHandler(options: BatchHandlerOptions) {
  const { redis, publisher, log, stream, group, data, metrics } = options;
  const deadLetter = (malformed: Malformed[]) => moveToDeadLetters(options, malformed);

  /** Sorts entries into events to publish, entries already gone (`done`) and malformed ones. */
  function parse(entries: ReadEntry[]) {
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
    return { events, done, malformed };
  }

  return async function handle(entries: ReadEntry[], source: string): Promise<void> {
    const { events, done, malformed } = parse(entries);
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
    // Unpublished entries stay pending: they are read again from this consumer's history.
    metrics.count("stream", "accepted", events.length - poison.length);
    metrics.count("stream", "delivered", results.filter((r) => r === true).length);
    metrics.count("stream", "duplicate", results.filter((r) => r === false).length);
    metrics.count("stream", "failed", failures);
    if (failures) throw new Error(`${failures} stream event(s) not published`);
  };
}
