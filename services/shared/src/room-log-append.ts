import type { Cluster, Redis } from "ioredis";
import { shardedChannelOf, type BusMode } from "./bus.js";
import { busPublishCommand, encodeBroadcast } from "./bus-codec.js";
import { encodeOrRefuse, encodeStoredBody } from "./entry-encoding.js";
import { rateLimitKeys, roomLogKeys } from "./keys.js";
import { LOG_START } from "./log-id.js";
import { luaScript } from "./lua.js";
import { tsOf } from "./room-log-read.js";
import { AMEND_HEAD, guardArgs, type AmendGuard, type AmendRefused, type IdFields } from "./room-log-amend.js";
import type { RateLimit } from "./rate-limit.js";
import type { QuotaCharge } from "./storage-quota.js";

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
  /**
   * The storage quotas to charge once the entry is stored (a duplicate or a refused append charges
   * nothing). On one Redis server the script counts them in the same step; on a Redis Cluster, or
   * in memory, `charge.charge()` does after the append.
   */
  charge?: QuotaCharge;
}

/** Where an entry's log id goes, as stored in its `f` field (decodeEntry reads it back). */
export function idFields({ logIdAlias = false, reference = false }: AppendOptions): IdFields {
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

/*
 * One script appends to the room's stream and publishes the Socket.IO packet, so that:
 * - a message is never published without being stored, nor stored without being published;
 * - the bus carries each room's entries in log order (Redis runs scripts one at a time), so every
 *   pod delivers them in that order and `prev` lets a client see a gap;
 * - it costs one round trip, the sender's rate limit and the storage quotas included: the script
 *   counts the limit's keys exactly as rate-limiter-flexible does (a fixed window per key: SET NX
 *   with the window's expiry, INCR, PTTL; once the base limit is spent, the burst limit is
 *   counted), so both count the same keys the same way, and a refused message is neither stored
 *   nor published. A retry caught by the dedupe key costs no points. Once the entry is stored it
 *   adds its bytes to the quota keys (KEYS[5] to KEYS[7], the same SET NX, INCRBY, PTTL as
 *   rate-limiter-flexible's) and returns what each has used and how long its window has left:
 *   the pod refuses from memory once one is spent (storage-quota.ts). Measured on 1000 rooms of 2,
 *   the quotas' three separate EVALSHAs had made a message cost four round trips.
 * The packet is encoded in Node by the bus emitter, with placeholders where the id, the previous
 * id and the timestamp go; the script splices the real values into the msgpack bytes.
 *
 * In sharded mode the script SPUBLISHes on the room's channel. Redis Cluster lets a script do
 * that only when the channel hashes to the slot of the script's keys, so on a cluster the keys
 * take the channel's name as their hash tag (see `roomKeyLayout`).
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
 * Appends (XADD, trims) and publishes: the part of the append shared with the amend script
 * (room-log-amend.ts), which may set `prev` first (to the last id before it deleted an entry).
 */
const APPEND_TAIL = `
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
local counted = {}
for k = 5, 4 + tonumber(ARGV[16]) do
  redis.call('SET', KEYS[k], 0, 'EX', ARGV[15], 'NX')
  local used = redis.call('INCRBY', KEYS[k], ARGV[14])
  local left = redis.call('PTTL', KEYS[k])
  if left == -1 then
    redis.call('EXPIRE', KEYS[k], ARGV[15])
    left = 1000 * tonumber(ARGV[15])
  end
  counted[#counted + 1] = used
  counted[#counted + 1] = left
end
local function str(s)
  if #s < 32 then return string.char(0xa0 + #s) .. s end
  return string.char(0xd9, #s) .. s
end
local kinds = ARGV[6]
local packet = ARGV[17]
for k = 1, #kinds do
  local c = string.sub(kinds, k, k)
  if c == 'i' then packet = packet .. str(id)
  elseif c == 'p' then packet = packet .. str(prev)
  else packet = packet .. string.char(0xcb) .. struct.pack('>d', ms) end
  packet = packet .. ARGV[17 + k]
end
redis.call(ARGV[9], ARGV[5], packet)
return {1, id, unpack(counted)}
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
  /** What goes between the parts: `i` the id, `p` the previous id, `t` the timestamp. */
  kinds: string;
  parts: Buffer[];
}

/**
 * Encodes the packet with the bus codec (so the bytes are exactly what the pods' adapter
 * decodes), then cuts it around the placeholders. The placeholders come before every field a
 * client controls, so the first match is always the right one.
 */
function template(mode: BusMode, room: string, event: string, body: Record<string, unknown>, ids: IdFields): Template {
  const alias = ids === "id,logId";
  // An edit or a delete carries the message's own `id` in its body: only `logId` is the entry's.
  const marks = alias ? { id: ID_MARK, logId: ID_MARK } : ids === "ref" ? { logId: ID_MARK } : { id: ID_MARK };
  const { channel, bytes } = encodeBroadcast(mode, room, event, { ...marks, prev: PREV_MARK, ts: TS_MARK, ...body });
  const kinds = alias ? "iipt" : "ipt";
  const parts: Buffer[] = [];
  let from = 0;
  for (const kind of kinds) {
    const mark = kind === "i" ? ID_BYTES : kind === "p" ? PREV_BYTES : TS_BYTES;
    const at = bytes.indexOf(mark, from);
    if (at < 0) throw new Error("unexpected packet encoding");
    parts.push(bytes.subarray(from, at));
    from = at + mark.length;
  }
  parts.push(bytes.subarray(from));
  return { channel, kinds, parts };
}

const appendScript = luaScript<[0 | 1 | 2, string, ...number[]]>(APPEND_HEAD + APPEND_TAIL, 7);
/** The amend script reads its guard (ARGV 10 to 13) where the append reads its limit; status 3 is a refusal. */
const amendScript = luaScript<[1 | 3, string, ...number[]]>(AMEND_HEAD + APPEND_TAIL, 7);

const isCluster = (redis: Redis | Cluster): boolean => "isCluster" in redis && redis.isCluster;

/**
 * The key layout of a room's log: its keys share a hash tag, so they share a slot, as Redis
 * Cluster requires of a script. The tag is the room's name, except on a cluster in sharded mode,
 * where it is the room's channel, so that the script may SPUBLISH there too. (A standalone server
 * keeps the keys it always had.)
 */
export function roomKeyLayout(redis: Redis | Cluster, prefix: string, busMode: BusMode) {
  const sameSlotAsChannel = busMode === "sharded" && isCluster(redis);
  return (room: string) => roomLogKeys(prefix, sameSlotAsChannel ? shardedChannelOf(room) : room);
}

/**
 * Whether a rate limit or the storage quotas can be counted inside the append script: not on a
 * cluster, where their keys live in other slots than the room's.
 */
export const limitInScript = (redis: Redis | Cluster): boolean => !isCluster(redis);

export interface AppenderSettings {
  /** Whether the script counts `AppendOptions.charge` itself (`limitInScript`); else `charge.charge()` after it. */
  chargeInScript: boolean;
  maxEntries: number;
  maxAgeSeconds: number;
  busMode: BusMode;
  keysOf: ReturnType<typeof roomKeyLayout>;
}

/**
 * One append by the script: stored, published, and (with `limit`) counted against the limit first.
 * With `guard` it is an edit or a delete (room-log-amend.ts), checked by the amend script first.
 */
export function createAppender(redis: Redis | Cluster, { chargeInScript, maxEntries, maxAgeSeconds, busMode, keysOf }: AppenderSettings) {
  const publishCommand = busPublishCommand(busMode);
  return async function append(
    room: string,
    event: string,
    body: Record<string, unknown>,
    options: AppendOptions,
    limit?: AppendLimit,
    guard?: AmendGuard,
  ): Promise<AppendResult | AppendRefused | AmendRefused> {
    const { dedupe } = options;
    const ids = idFields(options);
    const inScript = chargeInScript ? options.charge : undefined;
    const quotaKeys = inScript?.keys ?? [];
    // A body the encoders refuse is the caller's to fix: UnencodableError, never a Redis error.
    const { channel, kinds, parts } = encodeOrRefuse(() => template(busMode, room, event, body, ids));
    const stored = encodeOrRefuse(() => encodeStoredBody(body));
    const keys = keysOf(room);
    // Without a limit the script is handed the stream's key again, so that all its keys share a slot.
    const limitKeys: [string, string] = limit ? rateLimitKeys(limit.limiter.options, limit.key) : [keys.stream, keys.stream];
    const { points = 0, durationSeconds = 0, burst } = limit?.limiter.options ?? {};
    // The quota keys the script does not charge are the stream's key again, for the same reason.
    const chargeKeys = [0, 1, 2].map((i) => quotaKeys[i] ?? keys.stream);
    const [status, value, ...counted] = await (guard ? amendScript : appendScript).run(
      redis,
      keys.stream,
      dedupe ? keys.dedupe(dedupe.scope) : keys.stream,
      ...limitKeys,
      ...chargeKeys,
      maxEntries,
      maxAgeSeconds * 1000,
      event,
      stored,
      channel,
      kinds,
      dedupe?.ttlSeconds ?? 0,
      ids,
      publishCommand,
      ...(guard ? guardArgs(guard) : [points, durationSeconds, burst?.points ?? 0, burst?.durationSeconds ?? 0]),
      inScript?.bytes ?? 0,
      inScript?.windowSeconds ?? 0,
      quotaKeys.length,
      ...parts,
    );
    if (status === 2) return { refused: "rate_limited", retryAfterMs: Math.max(1, Number(value)) };
    if (status === 3) return { refused: value as AmendRefused["refused"] };
    if (status === 1 && options.charge) {
      if (inScript) inScript.settle(counted);
      else await options.charge.charge();
    }
    return { id: value, ts: tsOf(value), duplicate: status === 0 };
  };
}
