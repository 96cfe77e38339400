import type { Cluster, Redis } from "ioredis";
import { pairsOf, type Logger } from "@chat/shared";
import type { DataLimits } from "./events.js";
import type { NotifierMetrics } from "./metrics.js";
import type { Publisher } from "./publisher.js";
import { DEAD_LETTER_VALUE_CHARS, createBatchHandler } from "./stream-batch.js";
import { createStreamReader, type ReadBatch } from "./stream-read.js";

export interface StreamConsumerOptions {
  redis: Redis | Cluster;
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

/** The first wait after a read that found nothing; it doubles up to `pollMs`. */
const IDLE_FIRST_WAIT_MS = 5;
/** A consumer with nothing pending and idle this long is gone; it is removed from the group. */
const STALE_CONSUMER_MS = 10 * 60_000;
/** How often this consumer looks for stale ones (on a claim pass). */
const REAP_EVERY_MS = 60_000;

const delay = (ms: number, cancel: Promise<void>) => Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), cancel]);

/** A batch the byte budget cut short left the rest pending to us: read our history next. */
const continueAfter = (batch: ReadBatch) => (batch.more ? batch.entries.at(-1)!.id : undefined);

/**
 * Reads the stream through a consumer group: each entry goes to one replica, is published, then
 * acked. A replica that dies leaves its entries pending; another claims them with XAUTOCLAIM once
 * they have been idle for `claimIdleMs`. The dedupe key written atomically with each publish
 * makes any redelivery a no-op, so delivery is exactly once. Errors never leave this loop: it
 * backs off and resumes when Redis does.
 */
export function startStreamConsumer(options: StreamConsumerOptions): StreamConsumer {
  const { log, stream, group, consumer } = options;
  let stopping = false;
  let signalStop!: () => void;
  const stopped = new Promise<void>((resolve) => (signalStop = resolve));
  const step = createStep(options, stopped);

  async function run(): Promise<void> {
    let failing = false;
    let backoffMs = 100;
    while (!stopping) {
      try {
        await step.next();
        if (failing) log.info("stream consumer resumed");
        failing = false;
        backoffMs = 100;
      } catch (err) {
        if (stopping) break;
        const message = (err as Error).message;
        step.failed(message);
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

/**
 * One step of the consumer at a time, in this order: our own pending entries (`history`, after a
 * failure or a batch cut short), then a claim pass when one is due, else new entries.
 */
function createStep(options: StreamConsumerOptions, stopped: Promise<void>) {
  const { redis, log, stream, group, consumer, batchSize, claimIdleMs, data } = options;
  // Claiming at half the idle time bounds how late a dead replica's entries are picked up.
  const claimEveryMs = Math.max(50, Math.floor(claimIdleMs / 2));
  // Values up to the data limit come whole (the other valid fields are short); longer ones are
  // cut in Redis and dead-lettered by their real size.
  const cap = Math.max(data.maxBytes, DEAD_LETTER_VALUE_CHARS);
  const reader = createStreamReader(redis, { stream, group, consumer, count: batchSize, budget: options.batchBytes, cap });
  const handle = createBatchHandler(options);
  const state = { groupReady: false, history: undefined as string | undefined, claimCursor: "0-0", lastClaimPass: 0, lastReap: 0, idleMs: 0 };

  async function readHistory(from: string): Promise<void> {
    const batch = await reader.read(from);
    state.history = batch.entries.at(-1)?.id;
    if (batch.entries.length) await handle(batch.entries, "history");
  }

  async function claim(): Promise<void> {
    const batch = await reader.claim(state.claimCursor, claimIdleMs);
    state.claimCursor = batch.cursor!;
    if (state.claimCursor === "0-0") state.lastClaimPass = Date.now();
    if (batch.entries.length) log.info({ count: batch.entries.length }, "claimed entries a dead consumer left pending");
    state.history = continueAfter(batch);
    await handle(batch.entries, "claimed");
    if (Date.now() - state.lastReap >= REAP_EVERY_MS) {
      state.lastReap = Date.now();
      await reapStaleConsumers(redis, options, log);
    }
  }

  /**
   * Polled, not a blocking XREADGROUP: a blocking read would hand over whole entries, whatever
   * their size, where the script sends a bounded part of them. The wait doubles while the stream
   * stays idle, so an idle replica costs little, and starts again at nothing as soon as entries come.
   */
  async function readNew(): Promise<void> {
    const batch = await reader.read(">");
    state.history = continueAfter(batch);
    state.idleMs = batch.entries.length ? 0 : Math.min(options.pollMs, Math.max(IDLE_FIRST_WAIT_MS, state.idleMs * 2));
    if (batch.entries.length) await handle(batch.entries, "new");
    else await delay(state.idleMs, stopped);
  }

  return {
    async next(): Promise<void> {
      if (!state.groupReady) state.groupReady = await ensureGroup(options);
      if (state.history !== undefined) await readHistory(state.history);
      else if (state.claimCursor !== "0-0" || Date.now() - state.lastClaimPass >= claimEveryMs) await claim();
      else await readNew();
    },
    /** After a failure: re-read our pending entries, and re-create the group if it is gone. */
    failed(message: string): void {
      if (/NOGROUP/.test(message)) state.groupReady = false; // the stream or group was deleted (or Redis lost it)
      state.history = "0";
    },
  };
}

/** Creates the consumer group unless it exists; true once it does. */
async function ensureGroup({ redis, stream, group, log }: StreamConsumerOptions): Promise<true> {
  try {
    // From 0, not $: entries queued before the first notifier ever started are delivered too.
    await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
    log.info({ stream, group }, "consumer group created");
  } catch (err) {
    if (!/BUSYGROUP/.test((err as Error).message)) throw err;
  }
  return true;
}

/** Removes consumers that have been gone for long and hold nothing, so restarts don't pile up. */
async function reapStaleConsumers(redis: Redis | Cluster, { stream, group, consumer }: StreamConsumerOptions, log: Logger): Promise<void> {
  const infos = (await redis.xinfo("CONSUMERS", stream, group)) as (string | number)[][];
  for (const info of infos) {
    const fields = new Map(pairsOf(info));
    const name = String(fields.get("name"));
    if (name !== consumer && fields.get("pending") === 0 && Number(fields.get("idle")) > STALE_CONSUMER_MS) {
      await redis.xgroup("DELCONSUMER", stream, group, name);
      log.info({ consumer: name }, "removed a stale consumer");
    }
  }
}
