import type { Cluster, Redis } from "ioredis";
import type { BusMode } from "./bus.js";
import { LOG_START } from "./log-id.js";
import { amendmentEntry, memoryAmend, memoryReadMarkers, redisReadMarkers, type AmendResult, type Amendment, type ReadState } from "./room-log-amend.js";
import {
  createAppender,
  idFields,
  limitInScript,
  roomKeyLayout,
  type AppendLimit,
  type AppendOptions,
  type AppendRefused,
  type AppendResult,
} from "./room-log-append.js";
import {
  anchoredIn,
  fromScript,
  rawSize,
  readArgs,
  readArray,
  readScript,
  toReadResult,
  tsOf,
  type RawEntry,
  type ReadOptions,
  type ReadResult,
} from "./room-log-read.js";

export { tsOf, type ReadOptions, type ReadResult } from "./room-log-read.js";
export type { AppendLimit, AppendOptions, AppendRefused, AppendResult, Dedupe } from "./room-log-append.js";
export { roomKeyLayout } from "./room-log-append.js";

export interface RoomLogOptions {
  /**
   * Entries kept per room (trimmed approximately, a Redis Stream `MAXLEN ~`).
   * @default 1000
   */
  maxEntries?: number;
  /**
   * Entries older than this are trimmed, and a room idle this long loses its log. 0 keeps them.
   * @default 604800 (7 days)
   */
  maxAgeSeconds?: number;
  /**
   * Prefix of every Redis key of the log.
   * @default "chat"
   */
  prefix?: string;
  /**
   * How entries reach the pods: the same mode as theirs (`PUBLISH` or `SPUBLISH`).
   * @default "classic"
   */
  busMode?: BusMode;
}

/**
 * The per-room log: every room event gets a per-room, monotonically increasing id, is stored,
 * and is published to every pod, in one step.
 */
export interface RoomLog {
  /** Stores `body` as `event` in `room`'s log and delivers `{ id, prev, ts, ...body }` to the room. */
  append(room: string, event: string, body: Record<string, unknown>, options?: AppendOptions): Promise<AppendResult>;
  /**
   * `append`, once `limit` lets it through. In Redis the limit is counted by the same script, in the
   * same round trip (except on a Redis Cluster, where its keys live in other slots than the room's).
   */
  appendLimited(room: string, event: string, body: Record<string, unknown>, limit: AppendLimit, options?: AppendOptions): Promise<AppendResult | AppendRefused>;
  /** A catch-up (`after`) or a page back (`before`, or the newest entries); see `ReadOptions`. */
  read(room: string, options: ReadOptions): Promise<ReadResult>;
  /** Edits or deletes a message, as one more entry (room-log-amend.ts). */
  amend(room: string, amendment: Amendment): Promise<AmendResult>;
  /** Moves `user`'s read marker in `room` forward to `id` (never back); returns the marker. */
  markRead(room: string, user: string, id: string): Promise<string>;
  /** `user`'s read marker in `room`, the entries after it (capped) and the newest message. */
  readState(room: string, user: string, cap: number): Promise<ReadState>;
}

/** The room log in Redis: a capped Stream per room, appended and published by one script (room-log-append.ts). */
export function createRedisRoomLog(
  redis: Redis | Cluster,
  { maxEntries = 1000, maxAgeSeconds = 604_800, prefix = "chat", busMode = "classic" }: RoomLogOptions = {},
): RoomLog {
  const keysOf = roomKeyLayout(redis, prefix, busMode);
  const inScript = limitInScript(redis);
  const append = createAppender(redis, { chargeInScript: inScript, maxEntries, maxAgeSeconds, busMode, keysOf });
  const markers = redisReadMarkers(redis, (room) => [keysOf(room).stream, keysOf(room).read], maxAgeSeconds);

  return {
    append: (room, event, body, options = {}) => append(room, event, body, options) as Promise<AppendResult>,

    async appendLimited(room, event, body, limit, options = {}) {
      if (inScript) return append(room, event, body, options, limit) as Promise<AppendResult | AppendRefused>;
      const allowed = await limit.limiter.consume(limit.key);
      if (!allowed.ok) return { refused: "rate_limited", retryAfterMs: allowed.retryAfterMs };
      return append(room, event, body, options) as Promise<AppendResult>;
    },

    async read(room, options) {
      const raw = await readScript.run(redis, keysOf(room).stream, ...readArgs(options));
      return toReadResult(options, fromScript(options, raw));
    },

    async amend(room, amendment) {
      const { event, body, guard } = amendmentEntry(room, amendment);
      return (await append(room, event, body, { reference: true }, undefined, guard)) as AmendResult;
    },
    ...markers,
  };
}

/**
 * The same log in memory, for a single node without Redis. `deliver` emits to the room.
 */
export function createMemoryRoomLog(
  deliver: (room: string, event: string, payload: Record<string, unknown>) => void,
  { maxEntries = 1000, maxAgeSeconds = 604_800 }: RoomLogOptions = {},
): RoomLog {
  // Entries are kept as Redis stores them (the same fields), so that reads share one decoder and
  // one completeness rule with the Redis log. `last` is the newest id a room ever gave.
  const rooms = new Map<string, { entries: { id: string; ts: number; fields: string[]; size: number }[]; last: string }>();
  const seen = new Map<string, { id: string; expires: number }>();
  const markers = memoryReadMarkers((room) => rooms.get(room)?.entries ?? []);
  let lastMs = 0;
  let seq = 0;

  const log: RoomLog = {
    async appendLimited(room, event, body, limit, options) {
      const allowed = await limit.limiter.consume(limit.key);
      if (!allowed.ok) return { refused: "rate_limited", retryAfterMs: allowed.retryAfterMs };
      return log.append(room, event, body, options);
    },

    async append(room, event, body, options = {}) {
      const { dedupe } = options;
      const ids = idFields(options);
      const now = Date.now();
      const key = dedupe && `${room}\u0000${dedupe.scope}`;
      const earlier = key ? seen.get(key) : undefined;
      if (earlier && earlier.expires > now) return { id: earlier.id, ts: tsOf(earlier.id), duplicate: true };
      seq = now > lastMs ? 0 : seq + 1;
      lastMs = Math.max(now, lastMs);
      const id = `${lastMs}-${seq}`;
      const state = rooms.get(room) ?? { entries: [], last: LOG_START };
      rooms.set(room, state);
      const prev = state.last;
      const fields = ["e", event, "p", prev, "f", ids, "b", JSON.stringify(body)];
      state.entries.push({ id, ts: lastMs, fields, size: rawSize(fields) });
      state.last = id;
      const oldest = maxAgeSeconds > 0 ? lastMs - maxAgeSeconds * 1000 : 0;
      while (state.entries.length > maxEntries || (state.entries[0] && state.entries[0].ts < oldest)) state.entries.shift();
      if (key && dedupe) {
        seen.set(key, { id, expires: now + dedupe.ttlSeconds * 1000 });
        if (seen.size > 100_000) for (const [k, v] of seen) if (v.expires <= now) seen.delete(k);
      }
      deliver(
        room,
        event,
        ids === "ref" ? { logId: id, prev, ts: lastMs, ...body } : { id, ...(ids === "id,logId" && { logId: id }), prev, ts: lastMs, ...body },
      );
      // Charged before the ack, as by the Redis log.
      if (options.charge) await options.charge.charge();
      return { id, ts: lastMs, duplicate: false };
    },

    async read(room, options) {
      const state = rooms.get(room);
      const { rows, more, lastGenerated } = readArray(state?.entries ?? [], state?.last ?? "", options);
      return toReadResult(options, {
        rows: rows.map((e): RawEntry => [e.id, e.fields]),
        more,
        lastGenerated,
        anchored: anchoredIn(state?.entries ?? [], options),
      });
    },

    amend: (room, amendment) =>
      memoryAmend(rooms.get(room)?.entries ?? [], room, amendment, (event, body) => log.append(room, event, body, { reference: true })),
    ...markers,
  };
  return log;
}
