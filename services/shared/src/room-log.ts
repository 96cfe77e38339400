import type { Cluster, Redis } from "ioredis";
import { createBusEmitter, shardedChannelOf, type BusMode } from "./bus.js";
import { decodeStoredBody, encodeOrRefuse, encodeStoredBody } from "./entry-encoding.js";
import { LOG_START, compareLogIds } from "./log-id.js";
import type { ReplayedEntry } from "./protocol.js";
import { rateLimitKeys, type RateLimit } from "./rate-limit.js";

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

/** Makes a retry recognisable: the same `scope` within `ttlSeconds` is appended once. */
export interface Dedupe {
  scope: string;
  ttlSeconds: number;
}

export interface AppendOptions {
  dedupe?: Dedupe;
  /**
   * The payload field that carries the log id. Chat messages use `id`; notifications keep `id`
   * for the event id their sender chose, and carry the log id as `logId`.
   * @default "id"
   */
  idField?: "id" | "logId";
}

/** A rate limit the append must pass first: `key` (a user id, say) is counted against `limiter`. */
export interface AppendLimit {
  limiter: RateLimit;
  key: string;
}

/** An append the limit refused: nothing was stored or sent. */
export interface AppendRefused {
  refused: "rate_limited";
  retryAfterMs: number;
}

export interface AppendResult {
  id: string;
  ts: number;
  /** True when `dedupe` matched an earlier append: nothing was stored or sent again. */
  duplicate: boolean;
}

export interface ReadResult {
  /** Oldest first. */
  entries: ReplayedEntry[];
  /** False when the log no longer reaches back to what was asked for. */
  complete: boolean;
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
  /** Entries after `since`, or the last `limit` entries without it. */
  read(room: string, options: { since?: string; limit: number }): Promise<ReadResult>;
}

/** Milliseconds of a log id, which is also the entry's timestamp. */
export const tsOf = (id: string): number => Number(id.slice(0, id.indexOf("-")));

/*
 * One script appends to the room's stream and publishes the Socket.IO packet, so that:
 * - a message is never published without being stored, nor stored without being published;
 * - the bus carries each room's entries in log order (Redis runs scripts one at a time), so every
 *   pod delivers them in that order and `prev` lets a client see a gap;
 * - it costs one round trip, the sender's rate limit included: the script counts the limit's keys
 *   exactly as rate-limiter-flexible does (a fixed window per key: SET NX with the window's
 *   expiry, INCR, PTTL; once the base limit is spent, the burst limit is counted), so both count
 *   the same keys the same way, and a refused message is neither stored nor published. A retry
 *   caught by the dedupe key costs no points.
 * The packet is encoded in Node by the bus emitter, with placeholders where the id, the previous
 * id and the timestamp go; the script splices the real values into the msgpack bytes.
 *
 * In sharded mode the script SPUBLISHes on the room's channel. Redis Cluster lets a script do
 * that only when the channel hashes to the slot of the script's keys, so on a cluster the keys
 * take the channel's name as their hash tag (see `createRedisRoomLog`).
 */
const APPEND_SCRIPT = `
local ttl = tonumber(ARGV[10])
if ttl > 0 then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {0, seen} end
end
local function take(key, points, seconds)
  redis.call('SET', key, 0, 'EX', seconds, 'NX')
  local used = redis.call('INCR', key)
  local wait = redis.call('PTTL', key)
  if wait == -1 then
    redis.call('EXPIRE', key, seconds)
    wait = 1000 * seconds
  end
  return used <= points, wait
end
local points = tonumber(ARGV[13])
if points > 0 then
  local ok, wait = take(KEYS[3], points, ARGV[14])
  if not ok then
    local burst = tonumber(ARGV[15])
    if burst <= 0 then return {2, tostring(wait)} end
    local burstOk, burstWait = take(KEYS[4], burst, ARGV[16])
    if not burstOk then return {2, tostring(math.min(wait, burstWait))} end
  end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '${LOG_START}'
if #last > 0 then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3], 'p', prev, 'f', ARGV[11], 'b', ARGV[4])
local ms = tonumber(string.match(id, '^(%d+)'))
local maxAge = tonumber(ARGV[2])
if maxAge > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', ms - maxAge))
  redis.call('PEXPIRE', KEYS[1], maxAge)
end
if ttl > 0 then redis.call('SET', KEYS[2], id, 'EX', ttl) end
local function str(s)
  if #s < 32 then return string.char(0xa0 + #s) .. s end
  return string.char(0xd9, #s) .. s
end
redis.call(ARGV[12], ARGV[5], ARGV[6] .. str(id) .. ARGV[7] .. str(prev) .. ARGV[8] .. string.char(0xcb) .. struct.pack('>d', ms) .. ARGV[9])
return {1, id}
`;

const ID_MARK = "\u0001log-id\u0001";
const PREV_MARK = "\u0001log-prev\u0001";
const TS_MARK = 0.1234567890123; // a float: msgpack float64, 0xcb and 8 bytes

function stringBytes(value: string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([Buffer.from([0xa0 + bytes.length]), bytes]);
}
const ID_BYTES = stringBytes(ID_MARK);
const PREV_BYTES = stringBytes(PREV_MARK);
const TS_BYTES = Buffer.alloc(9);
TS_BYTES[0] = 0xcb;
TS_BYTES.writeDoubleBE(TS_MARK, 1);

interface Template {
  channel: string;
  parts: [Buffer, Buffer, Buffer, Buffer];
}

/**
 * Encodes the packet with the bus emitter (so the bytes are exactly what the pods' adapter
 * decodes), then cuts it around the placeholders. The placeholders come before every field a
 * client controls, so the first match is always the right one.
 */
function makeTemplater(mode: BusMode): (room: string, event: string, body: Record<string, unknown>, idField: string) => Template {
  const box: { captured?: { channel: string; message: Buffer } } = {};
  const record = (channel: string, message: Buffer) => {
    box.captured = { channel, message };
  };
  const emitter = createBusEmitter({ publish: record, spublish: record }, mode);
  return (room, event, body, idField) => {
    delete box.captured;
    emitter.to(room).emit(event, { [idField]: ID_MARK, prev: PREV_MARK, ts: TS_MARK, ...body });
    const captured = box.captured as { channel: string; message: Buffer } | undefined;
    if (!captured) throw new Error("the emitter published nothing");
    const { channel, message } = captured;
    const id = message.indexOf(ID_BYTES);
    const prev = message.indexOf(PREV_BYTES, id);
    const ts = message.indexOf(TS_BYTES, prev);
    if (id < 0 || prev < 0 || ts < 0) throw new Error("unexpected packet encoding");
    return {
      channel,
      parts: [
        message.subarray(0, id),
        message.subarray(id + ID_BYTES.length, prev),
        message.subarray(prev + PREV_BYTES.length, ts),
        message.subarray(ts + TS_BYTES.length),
      ],
    };
  };
}

type AppendCommand = (
  stream: string,
  dedupeKey: string,
  limitKey: string,
  burstKey: string,
  ...args: (string | number | Buffer)[]
) => Promise<[0 | 1 | 2, string]>;

/** The room log in Redis: a capped Stream per room, appended and published by one script. */
export function createRedisRoomLog(
  redis: Redis | Cluster,
  { maxEntries = 1000, maxAgeSeconds = 604_800, prefix = "chat", busMode = "classic" }: RoomLogOptions = {},
): RoomLog {
  // The hash tag keeps a room's keys in one slot, as Redis Cluster requires of a script. It is the
  // room's name, except on a cluster in sharded mode, where it is the room's channel, so that the
  // script may SPUBLISH there too. (A standalone server keeps the keys it always had.)
  const sameSlotAsChannel = busMode === "sharded" && "isCluster" in redis && redis.isCluster;
  const tag = (room: string) => (sameSlotAsChannel ? shardedChannelOf(room) : room);
  const streamKey = (room: string) => `${prefix}:log:{${tag(room)}}`;
  const dedupeKey = (room: string, scope: string) => `${prefix}:dedupe:{${tag(room)}}:${scope}`;
  if (!("chatLogAppend" in redis)) redis.defineCommand("chatLogAppend", { numberOfKeys: 4, lua: APPEND_SCRIPT });
  const appendCommand = (redis as unknown as { chatLogAppend: AppendCommand }).chatLogAppend.bind(redis);
  const template = makeTemplater(busMode);
  const publishCommand = busMode === "sharded" ? "SPUBLISH" : "PUBLISH";

  // A script's keys must share a slot on a cluster: there the limit is counted before the script.
  const limitInScript = !("isCluster" in redis && redis.isCluster);

  async function run(room: string, event: string, body: Record<string, unknown>, { dedupe, idField = "id" }: AppendOptions, limit?: AppendLimit) {
    // A body the encoders refuse is the caller's to fix: UnencodableError, never a Redis error.
    const { channel, parts } = encodeOrRefuse(() => template(room, event, body, idField));
    const stored = encodeOrRefuse(() => encodeStoredBody(body));
    // Without a limit the script is handed the stream's key again, so that all its keys share a slot.
    const keys: [string, string] = limit ? rateLimitKeys(limit.limiter.options, limit.key) : [streamKey(room), streamKey(room)];
    const { points = 0, durationSeconds = 0, burst } = limit?.limiter.options ?? {};
    const [status, value] = await appendCommand(
      streamKey(room),
      dedupe ? dedupeKey(room, dedupe.scope) : streamKey(room),
      ...keys,
      maxEntries,
      maxAgeSeconds * 1000,
      event,
      stored,
      channel,
      ...parts,
      dedupe?.ttlSeconds ?? 0,
      idField,
      publishCommand,
      points,
      durationSeconds,
      burst?.points ?? 0,
      burst?.durationSeconds ?? 0,
    );
    if (status === 2) return { refused: "rate_limited", retryAfterMs: Math.max(1, Number(value)) } satisfies AppendRefused;
    return { id: value, ts: tsOf(value), duplicate: status === 0 } satisfies AppendResult;
  }

  return {
    append: (room, event, body, options = {}) => run(room, event, body, options) as Promise<AppendResult>,

    async appendLimited(room, event, body, limit, options = {}) {
      if (limitInScript) return run(room, event, body, options, limit);
      const allowed = await limit.limiter.consume(limit.key);
      if (!allowed.ok) return { refused: "rate_limited", retryAfterMs: allowed.retryAfterMs };
      return run(room, event, body, options);
    },

    async read(room, { since, limit }) {
      const raw = since
        ? await redis.xrange(streamKey(room), `(${since}`, "+", "COUNT", maxEntries)
        : (await redis.xrevrange(streamKey(room), "+", "-", "COUNT", limit)).reverse();
      const entries: ReplayedEntry[] = [];
      for (const [id, fields] of raw) {
        const entry = decodeEntry(id, fields);
        if (entry) entries.push(entry);
      }
      return { entries, complete: isComplete(since, raw[0]?.[1]) };
    },
  };
}

/**
 * Whether `entries` reach back to `since`: the first entry read must point back to `since` (or
 * to something older); without `since`, to the start of the room.
 */
function isComplete(since: string | undefined, firstFields: string[] | undefined): boolean {
  if (!firstFields) return true;
  const prev = fieldOf(firstFields, "p") ?? LOG_START;
  return since ? compareLogIds(prev, since) <= 0 : prev === LOG_START;
}

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function decodeEntry(id: string, fields: string[]): ReplayedEntry | undefined {
  try {
    const event = fieldOf(fields, "e");
    const body = decodeStoredBody(fieldOf(fields, "b") ?? "null");
    if (!event || typeof body !== "object" || body === null) return undefined;
    const idField = fieldOf(fields, "f") ?? "id";
    return { event, prev: fieldOf(fields, "p") ?? LOG_START, ts: tsOf(id), ...(body as Record<string, unknown>), [idField]: id } as ReplayedEntry;
  } catch {
    return undefined; // a malformed entry is skipped, never thrown at a client
  }
}

/**
 * The same log in memory, for a single node without Redis. `deliver` emits to the room.
 */
export function createMemoryRoomLog(
  deliver: (room: string, event: string, payload: Record<string, unknown>) => void,
  { maxEntries = 1000, maxAgeSeconds = 604_800 }: RoomLogOptions = {},
): RoomLog {
  // Entries keep their log id in `logId` too, whatever field carries it outward.
  const rooms = new Map<string, (Record<string, unknown> & { event: string; logId: string; ts: number; prev: string })[]>();
  const seen = new Map<string, { id: string; expires: number }>();
  let lastMs = 0;
  let seq = 0;

  const log: RoomLog = {
    async appendLimited(room, event, body, limit, options) {
      const allowed = await limit.limiter.consume(limit.key);
      if (!allowed.ok) return { refused: "rate_limited", retryAfterMs: allowed.retryAfterMs };
      return log.append(room, event, body, options);
    },

    async append(room, event, body, { dedupe, idField = "id" } = {}) {
      const now = Date.now();
      const key = dedupe && `${room}\u0000${dedupe.scope}`;
      const earlier = key ? seen.get(key) : undefined;
      if (earlier && earlier.expires > now) return { id: earlier.id, ts: tsOf(earlier.id), duplicate: true };
      seq = now > lastMs ? 0 : seq + 1;
      lastMs = Math.max(now, lastMs);
      const id = `${lastMs}-${seq}`;
      const log = rooms.get(room) ?? [];
      rooms.set(room, log);
      const entry = { event, prev: log.at(-1)?.logId ?? LOG_START, ts: lastMs, ...body, [idField]: id, logId: id };
      log.push(entry);
      const oldest = maxAgeSeconds > 0 ? lastMs - maxAgeSeconds * 1000 : 0;
      while (log.length > maxEntries || (log[0] && log[0].ts < oldest)) log.shift();
      if (key && dedupe) {
        seen.set(key, { id, expires: now + dedupe.ttlSeconds * 1000 });
        if (seen.size > 100_000) for (const [k, v] of seen) if (v.expires <= now) seen.delete(k);
      }
      const { event: _event, logId: _logId, ...payload } = entry;
      deliver(room, event, idField === "logId" ? { ...payload, logId: id } : payload);
      return { id, ts: lastMs, duplicate: false };
    },

    async read(room, { since, limit }) {
      const log = rooms.get(room) ?? [];
      const kept = since ? log.filter((e) => compareLogIds(e.logId, since) > 0) : log.slice(-limit);
      const entries = kept.map(({ logId, ...entry }) => ("id" in entry ? entry : { ...entry, logId })) as ReplayedEntry[];
      const prev = kept[0]?.prev;
      const complete = prev === undefined || (since ? compareLogIds(prev, since) <= 0 : prev === LOG_START);
      return { entries, complete };
    },
  };
  return log;
}
