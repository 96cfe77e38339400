import { decodeStoredBody } from "./entry-encoding.js";
import { fieldOf, pairsOf } from "./flat-reply.js";
import { LOG_START, compareLogIds } from "./log-id.js";
import { luaScript } from "./lua.js";
import type { ReplayedEntry } from "./protocol.js";

/**
 * Reading a room's log: catch-ups (`join {since}`) and pages (`history`). One rule for both, the
 * same in Redis and in memory, so that a client can never mistake "more to read" for "entries were
 * trimmed" (see docs/protocol.md, "Catching up and paging").
 */
export interface ReadOptions {
  /** Entries after this id (exclusive), oldest first: a catch-up, or paging forward. */
  after?: string;
  /** Without `after`: the newest entries before this id (exclusive), paging back. */
  before?: string;
  /** At most this many entries. */
  limit: number;
  /**
   * Stop once the entries' stored bytes would pass this; one entry is always returned, so that
   * paging always moves on.
   * @default Infinity
   */
  maxBytes?: number;
}

export interface ReadResult {
  /** Oldest first. */
  entries: ReplayedEntry[];
  /**
   * Forward (`after`): `entries` hold every entry after `after` up to the newest one (no gap, no
   * more). Backward: `entries` reach back to the start of the log (nothing older to page).
   */
  complete: boolean;
  /**
   * Entries that belong here are gone from the log (trimmed), and no paging brings them back.
   * Forward: entries right after `after`. Backward, once the start of the log is reached: entries
   * older than it (the room's history is longer than its log).
   */
  gap: boolean;
  /** The answer was cut by `limit` or `maxBytes`: read on from `cursor`. */
  more: boolean;
  /** With `more`: where the next page starts (pass it as `after` forward, `before` backward). */
  cursor?: string;
}

/** A stored entry, before decoding: its id and the flat field list (`e`, `p`, `f`, `b`). */
export type RawEntry = [id: string, fields: string[]];

/**
 * What a read found: the entries it kept (oldest first for both directions), whether it cut them,
 * and, when nothing matched, the newest id the log ever gave (`""`: the log does not exist).
 */
export interface RawRead {
  rows: RawEntry[];
  more: boolean;
  lastGenerated?: string;
  /**
   * Forward: an entry at or before `after` is still in the log. Trimming only ever removes the
   * oldest entries, so then a hole after `after` is a deleted message (room-log-amend.ts), not a gap.
   */
  anchored?: boolean;
}

/**
 * Turns a raw read into the answer. The gap rule, forward from `after`:
 * - the first entry points back (`prev`) to something newer than `after`: the entries between
 *   were trimmed;
 * - the first entry is the first of its log (`prev` is `0-0`) but `after` is not `0-0`: the log
 *   was recreated (it expired whole after being idle), so what followed `after` is unknowable;
 * - nothing is after `after`, yet the log once gave a newer id (or no longer exists and `after`
 *   is not `0-0`): everything after it was trimmed.
 */
export function toReadResult(options: ReadOptions, { rows, more, lastGenerated, anchored = false }: RawRead): ReadResult {
  const entries: ReplayedEntry[] = [];
  for (const [id, fields] of rows) {
    const entry = decodeEntry(id, fields);
    if (entry) entries.push(entry);
  }
  const firstPrev = rows[0] ? (fieldOf(rows[0][1], "p") ?? LOG_START) : undefined;
  if (options.after !== undefined) {
    const after = options.after;
    let gap: boolean;
    if (firstPrev !== undefined) gap = !anchored && (compareLogIds(firstPrev, after) > 0 || (firstPrev === LOG_START && after !== LOG_START));
    else if (lastGenerated) gap = compareLogIds(lastGenerated, after) > 0;
    else gap = after !== LOG_START;
    const cursor = more ? rows.at(-1)?.[0] : undefined;
    return { entries, complete: !gap && !more, gap, more, ...(cursor && { cursor }) };
  }
  const cursor = more ? rows[0]?.[0] : undefined;
  const gap = !more && firstPrev !== undefined && firstPrev !== LOG_START;
  return { entries, complete: !more, gap, more, ...(cursor && { cursor }) };
}

/** Bytes an entry takes in a read: the length of its stored fields (as the Redis script counts). */
export function rawSize(fields: string[]): number {
  return pairsOf(fields).reduce((size, [, value]) => size + Buffer.byteLength(value), 0);
}

/**
 * Reads in Redis in one atomic step: the range, cut by count and bytes, and, when the range is
 * empty, the stream's last generated id (so that "nothing after since" and "everything after
 * since was trimmed" differ). Forward: ARGV[1] = "f", XRANGE ARGV[2] ARGV[3]; backward: "b",
 * XREVRANGE ARGV[3] ARGV[2]. ARGV[4] is the limit, ARGV[5] the byte budget.
 */
const READ_SCRIPT = `
local limit = tonumber(ARGV[4])
local rows
if ARGV[1] == 'f' then
  rows = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', limit + 1)
else
  rows = redis.call('XREVRANGE', KEYS[1], ARGV[3], ARGV[2], 'COUNT', limit + 1)
end
local maxBytes = tonumber(ARGV[5])
local out = {}
local bytes = 0
local more = 0
for i, row in ipairs(rows) do
  if i > limit then more = 1 break end
  local size = 0
  local fields = row[2]
  for j = 2, #fields, 2 do size = size + #fields[j] end
  if #out > 0 and bytes + size > maxBytes then more = 1 break end
  bytes = bytes + size
  out[#out + 1] = row
end
local anchored = 0
if ARGV[1] == 'f' and #out > 0 and #redis.call('XREVRANGE', KEYS[1], string.sub(ARGV[2], 2), '-', 'COUNT', 1) > 0 then anchored = 1 end
local last = ''
if #rows == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return {out, more, last, anchored}
`;

export const readScript = luaScript<[RawEntry[], number, string, number]>(READ_SCRIPT, 1);

/** The script's arguments for `options`. */
export function readArgs({ after, before, limit, maxBytes = Number.POSITIVE_INFINITY }: ReadOptions): string[] {
  const bytes = Number.isFinite(maxBytes) ? String(maxBytes) : "9007199254740991";
  if (after !== undefined) return ["f", `(${after}`, "+", String(limit), bytes];
  return ["b", "-", before !== undefined ? `(${before}` : "+", String(limit), bytes];
}

/** The script's answer as a `RawRead` (backward rows are turned oldest first). */
export function fromScript(options: ReadOptions, [rows, more, last, anchored]: [RawEntry[], number, string, number?]): RawRead {
  return { rows: options.after !== undefined ? rows : rows.reverse(), more: more === 1, lastGenerated: last, anchored: anchored === 1 };
}

/** The memory log's `anchored` (see `RawRead`): its entries are oldest first. */
export function anchoredIn(log: readonly { id: string }[], { after }: ReadOptions): boolean {
  return after !== undefined && log.length > 0 && compareLogIds(log[0]!.id, after) <= 0;
}

/**
 * The same read over an in-memory log (oldest first), counting each entry's `size`: the memory
 * log's twin of `READ_SCRIPT`.
 */
export function readArray<T extends { id: string; size: number }>(
  log: readonly T[],
  lastGenerated: string | undefined,
  { after, before, limit, maxBytes = Number.POSITIVE_INFINITY }: ReadOptions,
): { rows: T[]; more: boolean; lastGenerated?: string } {
  const forward = after !== undefined;
  const matching = forward
    ? log.filter((e) => compareLogIds(e.id, after) > 0)
    : log.filter((e) => before === undefined || compareLogIds(e.id, before) < 0).reverse();
  const rows: T[] = [];
  let bytes = 0;
  let more = false;
  for (const entry of matching) {
    if (rows.length >= limit || (rows.length > 0 && bytes + entry.size > maxBytes)) {
      more = true;
      break;
    }
    bytes += entry.size;
    rows.push(entry);
  }
  return { rows: forward ? rows : rows.reverse(), more, lastGenerated: matching.length ? undefined : lastGenerated };
}

/**
 * An entry as a catch-up returns it: the live payload plus `event`. `id` is always the log id.
 * Entries the notifier stored before `eventId` existed (`f` = `logId`) kept the event's own id in
 * `id`: it moves to `eventId`, and `logId` stays as the deprecated alias of `id`.
 */
export function decodeEntry(id: string, fields: string[]): ReplayedEntry | undefined {
  try {
    const event = fieldOf(fields, "e");
    // Raw UTF-8 text (entry-encoding.ts), or plain JSON as stored before it.
    const body = decodeStoredBody(fieldOf(fields, "b") ?? "null");
    if (!event || typeof body !== "object" || body === null) return undefined;
    const ids = fieldOf(fields, "f") ?? "id";
    const { id: legacyEventId, ...rest } = body as Record<string, unknown>;
    const entry: ReplayedEntry = { event, id, prev: fieldOf(fields, "p") ?? LOG_START, ts: tsOf(id), ...rest };
    if (ids === "logId") return { ...entry, eventId: String(legacyEventId), logId: id };
    if (ids === "id,logId") return { ...entry, logId: id };
    // An edit or a delete: `id` names the message, `logId` is the entry's own id.
    if (ids === "ref") return { ...entry, id: String(legacyEventId), logId: id };
    return entry;
  } catch {
    return undefined; // a malformed entry is skipped, never thrown at a client
  }
}

/** Milliseconds of a log id, which is also the entry's timestamp. */
export const tsOf = (id: string): number => Number(id.slice(0, id.indexOf("-")));
