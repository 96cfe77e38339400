import type { Cluster, Redis } from "ioredis";
import { luaScript } from "@chat/shared";

/** A valid entry has at most 4 fields (a target, type, data, id): more is malformed anyway. */
const MAX_FIELDS = 8;

/*
 * Reads entries for this consumer and sends back only a bounded part of them. XREADGROUP (or
 * XAUTOCLAIM) runs inside Redis, where the entries already are; the script then cuts every name
 * and value longer than `cap` bytes, keeps at most MAX_FIELDS fields, and stops adding entries
 * once `budget` bytes are on their way. What it read and did not send stays pending to this
 * consumer, in its own history, and is read next (`more`). A producer's 100 MB entry therefore
 * costs the notifier `cap` bytes, not 100 MB, and a batch of them `budget` plus one entry.
 *
 * ARGV: mode ("read" or "claim"), group, consumer, count, budget, cap, start (">", an id of this
 * consumer's history, or the claim cursor), claim idle ms.
 * Reply: { next claim cursor or "", more (0/1), entries: { id, fields or false, value sizes, field count } }.
 */
const READ_SCRIPT = `
local entries, cursor = {}, ''
if ARGV[1] == 'claim' then
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[2], ARGV[3], ARGV[8], ARGV[7], 'COUNT', ARGV[4])
  cursor, entries = r[1], r[2]
else
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], ARGV[7])
  if r then entries = r[1][2] end
end
local budget, cap, maxFields = tonumber(ARGV[5]), tonumber(ARGV[6]), ${MAX_FIELDS}
local out, used = {}, 0
for i, e in ipairs(entries) do
  if i > 1 and used >= budget then return {cursor, 1, out} end
  local fields = e[2]
  if not fields then
    out[#out + 1] = {e[1], false, {}, 0}
  else
    local shown, sizes = {}, {}
    local n = math.min(#fields, 2 * maxFields)
    for j = 1, n do
      local v = fields[j]
      if j % 2 == 0 then sizes[j / 2] = #v end
      if #v > cap then v = string.sub(v, 1, cap) end
      shown[j] = v
      used = used + #v
    end
    out[#out + 1] = {e[1], shown, sizes, math.floor(#fields / 2)}
  end
end
return {cursor, 0, out}
`;
const readScript = luaScript<RawBatch>(READ_SCRIPT, 1);

type RawBatch = [cursor: string, more: 0 | 1, entries: [id: string, fields: string[] | null, sizes: number[], fieldCount: number][]];

/** One entry as read: its fields (values possibly cut short), and what they really were. */
export interface ReadEntry {
  id: string;
  /** `[name, value, …]`, at most `MAX_FIELDS` pairs; null when the entry was trimmed away while pending. */
  fields: string[] | null;
  /** The real byte length of each value, in order. */
  sizes: number[];
  /** How many fields the entry really has. */
  fieldCount: number;
}

export interface ReadBatch {
  entries: ReadEntry[];
  /** True when entries were read for this consumer but left for the next read of its history. */
  more: boolean;
  /** The claim's next cursor ("0-0": the pass is over); undefined for a read. */
  cursor?: string;
}

export interface StreamReaderOptions {
  stream: string;
  group: string;
  consumer: string;
  /** Entries read or claimed per call. */
  count: number;
  /** Bytes sent back per call, at least one entry. */
  budget: number;
  /** Longest name or value sent back; longer ones are cut to this and flagged by their size. */
  cap: number;
}

/** Reads and claims through READ_SCRIPT: what reaches the notifier is bounded by bytes. */
export function createStreamReader(redis: Redis | Cluster, { stream, group, consumer, count, budget, cap }: StreamReaderOptions) {
  const toBatch = ([cursor, more, raw]: RawBatch, claim: boolean): ReadBatch => ({
    entries: raw.map(([id, fields, sizes, fieldCount]) => ({ id, fields: fields || null, sizes, fieldCount })),
    more: more === 1,
    ...(claim ? { cursor } : {}),
  });
  return {
    /** New entries (`from` = ">"), or this consumer's own pending ones after `from`. */
    async read(from: string): Promise<ReadBatch> {
      return toBatch(await readScript.run(redis, stream, "read", group, consumer, count, budget, cap, from, 0), false);
    },
    /** Entries idle for `idleMs` (a dead consumer's), from `cursor` on. */
    async claim(cursor: string, idleMs: number): Promise<ReadBatch> {
      return toBatch(await readScript.run(redis, stream, "claim", group, consumer, count, budget, cap, cursor, idleMs), true);
    },
  };
}

export type StreamReader = ReturnType<typeof createStreamReader>;
