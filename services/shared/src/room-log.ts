import type { Cluster, Redis } from "ioredis";
import { createBusEmitter, shardedChannelOf, type BusMode } from "./bus.js";
import { encodeOrRefuse, encodeStoredBody } from "./entry-encoding.js";
import { LOG_START } from "./log-id.js";
import {
  READ_SCRIPT,
  anchoredIn,
  fromScript,
  rawSize,
  readArgs,
  readArray,
  toReadResult,
  tsOf,
  type RawEntry,
  type ReadOptions,
  type ReadResult,
} from "./room-log-read.js";

export { tsOf, type ReadOptions, type ReadResult } from "./room-log-read.js";
import {
  AMEND_HEAD,
  amendmentEntry,
  guardArgs,
  memoryAmend,
  memoryReadMarkers,
  redisReadMarkers,
  type AmendGuard,
  type AmendRefused,
  type AmendResult,
  type Amendment,
  type IdFields,
  type ReadState,
} from "./room-log-amend.js";
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
   * Also carry the log id as `logId`, the deprecated alias of `id` that room notifications had
   * when `id` was the notifier's event id (now `eventId`); clients that read `logId` keep working.
   * @default false
   */
  logIdAlias?: boolean;
  /**
   * The body's `id` is the message this entry is about (an edit or a delete, room-log-amend.ts):
   * the entry's own log id then goes in `logId`, which clients keep as the room's last id.
   * @default false
   */
  reference?: boolean;
}

/** Where an entry's log id goes, as stored in its `f` field (decodeEntry reads it back). */
function idFields({ logIdAlias = false, reference = false }: AppendOptions): IdFields {
  return reference ? "ref" : logIdAlias ? "id,logId" : "id";
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
const APPEND_HEAD = `
local ttl = tonumber(ARGV[7])
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
local points = tonumber(ARGV[10])
if points > 0 then
  local ok, wait = take(KEYS[3], points, ARGV[11])
  if not ok then
    local burst = tonumber(ARGV[12])
    if burst <= 0 then return {2, tostring(wait)} end
    local burstOk, burstWait = take(KEYS[4], burst, ARGV[13])
    if not burstOk then return {2, tostring(math.min(wait, burstWait))} end
  end
end
local prev
`;

/**
 * Appends (XADD, trims) and publishes: the part of the append shared with amend scripts
 * (room-log-amend.ts), which may set `prev` first (to the last id before they deleted an entry).
 */
export const APPEND_TAIL = `
if not prev then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  prev = '${LOG_START}'
  if #last > 0 then prev = last[1][1] end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3], 'p', prev, 'f', ARGV[8], 'b', ARGV[4])
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
local kinds = ARGV[6]
local packet = ARGV[14]
for k = 1, #kinds do
  local c = string.sub(kinds, k, k)
  if c == 'i' then packet = packet .. str(id)
  elseif c == 'p' then packet = packet .. str(prev)
  else packet = packet .. string.char(0xcb) .. struct.pack('>d', ms) end
  packet = packet .. ARGV[14 + k]
end
redis.call(ARGV[9], ARGV[5], packet)
return {1, id}
`;
const APPEND_SCRIPT = APPEND_HEAD + APPEND_TAIL;

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
  /** What goes between the parts: `i` the id, `p` the previous id, `t` the timestamp. */
  kinds: string;
  parts: Buffer[];
}

/**
 * Encodes the packet with the bus emitter (so the bytes are exactly what the pods' adapter
 * decodes), then cuts it around the placeholders. The placeholders come before every field a
 * client controls, so the first match is always the right one.
 */
export function makeTemplater(mode: BusMode): (room: string, event: string, body: Record<string, unknown>, ids: IdFields) => Template {
  const box: { captured?: { channel: string; message: Buffer } } = {};
  const record = (channel: string, message: Buffer) => {
    box.captured = { channel, message };
  };
  const emitter = createBusEmitter({ publish: record, spublish: record }, mode);
  return (room, event, body, ids) => {
    delete box.captured;
    const alias = ids === "id,logId";
    const marks = alias ? { id: ID_MARK, logId: ID_MARK } : ids === "ref" ? { logId: ID_MARK } : { id: ID_MARK };
    emitter.to(room).emit(event, { ...marks, prev: PREV_MARK, ts: TS_MARK, ...body });
    const captured = box.captured as { channel: string; message: Buffer } | undefined;
    if (!captured) throw new Error("the emitter published nothing");
    const { channel, message } = captured;
    const kinds = alias ? "iipt" : "ipt";
    const parts: Buffer[] = [];
    let from = 0;
    for (const kind of kinds) {
      const mark = kind === "i" ? ID_BYTES : kind === "p" ? PREV_BYTES : TS_BYTES;
      const at = message.indexOf(mark, from);
      if (at < 0) throw new Error("unexpected packet encoding");
      parts.push(message.subarray(from, at));
      from = at + mark.length;
    }
    parts.push(message.subarray(from));
    return { channel, kinds, parts };
  };
}

type AppendCommand = (
  stream: string,
  dedupeKey: string,
  limitKey: string,
  burstKey: string,
  ...args: (string | number | Buffer)[]
) => Promise<[0 | 1 | 2 | 3, string]>;

type ReadCommand = (stream: string, ...args: string[]) => Promise<[RawEntry[], number, string, number]>;

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
  if (!("chatLogRead" in redis)) redis.defineCommand("chatLogRead", { numberOfKeys: 1, lua: READ_SCRIPT });
  const readCommand = (redis as unknown as { chatLogRead: ReadCommand }).chatLogRead.bind(redis);
  if (!("chatLogAmend" in redis)) redis.defineCommand("chatLogAmend", { numberOfKeys: 4, lua: AMEND_HEAD + APPEND_TAIL });
  const amendCommand = (redis as unknown as { chatLogAmend: AppendCommand }).chatLogAmend.bind(redis);
  const markers = redisReadMarkers(redis, (room) => [streamKey(room), `${prefix}:read:{${tag(room)}}`], maxAgeSeconds);
  const template = makeTemplater(busMode);
  const publishCommand = busMode === "sharded" ? "SPUBLISH" : "PUBLISH";

  // A script's keys must share a slot on a cluster: there the limit is counted before the script.
  const limitInScript = !("isCluster" in redis && redis.isCluster);

  async function run(room: string, event: string, body: Record<string, unknown>, options: AppendOptions, limit?: AppendLimit, guard?: AmendGuard) {
    const { dedupe } = options;
    const ids = idFields(options);
    // A body the encoders refuse is the caller's to fix: UnencodableError, never a Redis error.
    const { channel, kinds, parts } = encodeOrRefuse(() => template(room, event, body, ids));
    const stored = encodeOrRefuse(() => encodeStoredBody(body));
    // Without a limit the script is handed the stream's key again, so that all its keys share a slot.
    const keys: [string, string] = limit ? rateLimitKeys(limit.limiter.options, limit.key) : [streamKey(room), streamKey(room)];
    const { points = 0, durationSeconds = 0, burst } = limit?.limiter.options ?? {};
    const [status, value] = await (guard ? amendCommand : appendCommand)(
      streamKey(room),
      dedupe ? dedupeKey(room, dedupe.scope) : streamKey(room),
      ...keys,
      maxEntries,
      maxAgeSeconds * 1000,
      event,
      stored,
      channel,
      kinds,
      dedupe?.ttlSeconds ?? 0,
      ids,
      publishCommand,
      // The amend script reads its guard where the append reads its limit.
      ...(guard ? guardArgs(guard) : [points, durationSeconds, burst?.points ?? 0, burst?.durationSeconds ?? 0]),
      ...parts,
    );
    if (status === 2) return { refused: "rate_limited", retryAfterMs: Math.max(1, Number(value)) } satisfies AppendRefused;
    if (status === 3) return { refused: value as "not_found" | "forbidden" } satisfies AmendRefused;
    return { id: value, ts: tsOf(value), duplicate: status === 0 } satisfies AppendResult;
  }

  return {
    append: (room, event, body, options = {}) => run(room, event, body, options) as Promise<AppendResult>,

    async appendLimited(room, event, body, limit, options = {}) {
      if (limitInScript) return run(room, event, body, options, limit) as Promise<AppendResult | AppendRefused>;
      const allowed = await limit.limiter.consume(limit.key);
      if (!allowed.ok) return { refused: "rate_limited", retryAfterMs: allowed.retryAfterMs };
      return run(room, event, body, options) as Promise<AppendResult>;
    },

    async read(room, options) {
      const raw = await readCommand(streamKey(room), ...readArgs(options));
      return toReadResult(options, fromScript(options, raw));
    },

    async amend(room, amendment) {
      const { event, body, guard } = amendmentEntry(room, amendment);
      return (await run(room, event, body, { reference: true }, undefined, guard)) as AmendResult;
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
