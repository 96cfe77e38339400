import type { Cluster, Redis } from "ioredis";
import { compareLogIds } from "./log-id.js";
import { luaScript } from "./lua.js";
import type { ReplayedEntry } from "./protocol.js";
import { fieldOf } from "./flat-reply.js";
import { decodeEntry, type RawEntry } from "./room-log-read.js";

/**
 * Edits, deletes and read markers of a room's log. An edit or a delete is one more entry of the
 * log (`message_edited`, `message_deleted`), appended and published like a message, so that it is
 * delivered live in log order and replayed by catch-ups. A delete also removes the message's entry
 * and its edits from the log: the text is gone from Redis, not only hidden.
 */

/** Where an entry's log id goes, as stored in its `f` field: see `AppendOptions.reference`. */
export type IdFields = "id" | "id,logId" | "ref";

/**
 * A change to message `id` of a room. `by` is the user id that must have sent the message; a
 * delete without `by` (a moderator's, or the server API's) removes anyone's message.
 */
export type Amendment = { kind: "edit"; id: string; text: string; by: string } | { kind: "delete"; id: string; by?: string };

/** What the amend script checks before it appends (ARGV 10 to 13 of the script). */
export interface AmendGuard {
  target: string;
  /** A substring only the author's stored message holds; empty: anyone's. */
  authorMark: string;
  remove: boolean;
  /** How the stored body of an edit of `target` begins, so that a delete removes those too. */
  editPrefix: string;
}

/** An amendment refused: the message is not in the log (any more), or the user did not send it. */
export interface AmendRefused {
  refused: "not_found" | "forbidden";
}

export type AmendResult = { id: string; ts: number; duplicate: boolean } | AmendRefused;

/** What a `message_edited` entry holds (the live event adds `logId`, `prev` and `ts`). */
export interface MessageEdited {
  room: string;
  /** The edited message's id. */
  id: string;
  text: string;
  editedAt: number;
}

/** What a `message_deleted` entry holds: the issue 20 moderator delete sends the same. */
export interface MessageDeleted {
  room: string;
  /** The deleted message's id. */
  id: string;
}

// Keys are written in this order on purpose: the stored body of an edit then starts with
// `{"room":…,"id":…`, which is how the delete finds the edits of a message (room names need no
// JSON escaping, log ids neither).
function editPrefix(room: string, id: string): string {
  return `{"room":${JSON.stringify(room)},"id":${JSON.stringify(id)},`;
}

/**
 * The marker only a message by `user` holds in its stored body `{"room","text","user":{"id",…}}`.
 * Inside a JSON string every quote is escaped, so `,"user":{"id":` can only be the real key.
 */
function authorMark(user: string): string {
  return `,"user":{"id":${JSON.stringify(user)},`;
}

/** The entry an amendment appends, and what the script checks first. */
export function amendmentEntry(room: string, a: Amendment): { event: string; body: Record<string, unknown>; guard: AmendGuard } {
  const guard = { target: a.id, authorMark: a.by === undefined ? "" : authorMark(a.by), remove: a.kind === "delete", editPrefix: editPrefix(room, a.id) };
  if (a.kind === "edit") return { event: "message_edited", body: { room, id: a.id, text: a.text, editedAt: Date.now() } satisfies MessageEdited, guard };
  return { event: "message_deleted", body: { room, id: a.id } satisfies MessageDeleted, guard };
}

export function guardArgs(guard: AmendGuard): string[] {
  return [guard.target, guard.authorMark, guard.remove ? "1" : "0", guard.editPrefix];
}

/**
 * The amend script's first half; room-log-append.ts's `APPEND_TAIL` appends and publishes. It checks
 * that the target is a message of the log (and the user's), and for a delete takes `prev` before
 * removing the message and its edits, so the live chain stays unbroken.
 */
export const AMEND_HEAD = `
local ttl = 0
local target = ARGV[10]
local found = redis.call('XRANGE', KEYS[1], target, target)
if #found == 0 then return {3, 'not_found'} end
local function fields(row)
  local e, b = '', ''
  local f = row[2]
  for i = 1, #f - 1, 2 do
    if f[i] == 'e' then e = f[i + 1] elseif f[i] == 'b' then b = f[i + 1] end
  end
  return e, b
end
local event, body = fields(found[1])
if event ~= 'message' then return {3, 'not_found'} end
if ARGV[11] ~= '' and not string.find(body, ARGV[11], 1, true) then return {3, 'forbidden'} end
local prev
if ARGV[12] == '1' then
  prev = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1][1]
  local about = ARGV[13]
  for _, row in ipairs(redis.call('XRANGE', KEYS[1], '(' .. target, '+')) do
    local e, b = fields(row)
    if e == 'message_edited' and string.sub(b, 1, #about) == about then redis.call('XDEL', KEYS[1], row[1]) end
  end
  redis.call('XDEL', KEYS[1], target)
end
`;

interface MemoryEntry {
  id: string;
  fields: string[];
}

/** The memory log's amend: the same checks and removals as the script, then `append`. */
export async function memoryAmend(
  entries: MemoryEntry[],
  room: string,
  amendment: Amendment,
  append: (event: string, body: Record<string, unknown>) => Promise<{ id: string; ts: number; duplicate: boolean }>,
): Promise<AmendResult> {
  const { event, body, guard } = amendmentEntry(room, amendment);
  const at = entries.findIndex((e) => e.id === guard.target);
  const found = entries[at];
  if (!found || fieldOf(found.fields, "e") !== "message") return { refused: "not_found" };
  if (guard.authorMark && !fieldOf(found.fields, "b")!.includes(guard.authorMark)) return { refused: "forbidden" };
  if (guard.remove) {
    for (let i = entries.length - 1; i >= at; i--) {
      const e = entries[i]!;
      const isEdit = fieldOf(e.fields, "e") === "message_edited" && fieldOf(e.fields, "b")!.startsWith(guard.editPrefix);
      if (i === at || isEdit) entries.splice(i, 1);
    }
  }
  return append(event, body);
}

/** A user's read state of a room: the `join` ack's `lastRead` and `unread`, and the `rooms` list's. */
export interface ReadState {
  lastRead?: string;
  /** Entries after `lastRead` (all of them without one), at most the cap asked for. */
  unread: number;
  /** The room's newest message, if one of its last 20 entries is a message. */
  last?: ReplayedEntry;
}

/** How many of a room's newest entries are looked through for its last message. */
const LAST_MESSAGE_WINDOW = 20;

const MARK_SCRIPT = `
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current or older(current, ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  current = ARGV[2]
end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return current
`;

const STATE_SCRIPT = `
local lastRead = redis.call('HGET', KEYS[2], ARGV[1])
local from = '-'
if lastRead then from = '(' .. lastRead end
local unread = #redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', tonumber(ARGV[2]))
local last = {}
for _, row in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ${LAST_MESSAGE_WINDOW})) do
  local f = row[2]
  if f[1] == 'e' and f[2] == 'message' then
    last = row
    break
  end
end
return {lastRead or '', unread, last}
`;

const markScript = luaScript<string>(MARK_SCRIPT, 2);
const stateScript = luaScript<[string, number, RawEntry | []]>(STATE_SCRIPT, 2);

/**
 * Read markers in Redis: a hash per room (user id → last-read id), in the slot of the room's log
 * so that one script reads both. It expires with the log when the room is idle.
 */
export function redisReadMarkers(redis: Redis | Cluster, keys: (room: string) => [log: string, markers: string], maxAgeSeconds: number) {
  return {
    markRead: (room: string, user: string, id: string) => markScript.run(redis, ...keys(room), user, id, maxAgeSeconds * 1000),
    async readState(room: string, user: string, cap: number): Promise<ReadState> {
      const [lastRead, unread, last] = await stateScript.run(redis, ...keys(room), user, cap);
      const entry = last.length ? decodeEntry(last[0], last[1]) : undefined;
      return { ...(lastRead && { lastRead }), unread, ...(entry && { last: { ...entry, room } }) };
    },
  };
}

/** The same markers for the memory log. */
export function memoryReadMarkers(entriesOf: (room: string) => readonly MemoryEntry[]) {
  const markers = new Map<string, Map<string, string>>();
  return {
    async markRead(room: string, user: string, id: string): Promise<string> {
      const users = markers.get(room) ?? new Map<string, string>();
      markers.set(room, users);
      const current = users.get(user);
      if (current === undefined || compareLogIds(current, id) < 0) users.set(user, id);
      return users.get(user)!;
    },
    async readState(room: string, user: string, cap: number): Promise<ReadState> {
      const entries = entriesOf(room);
      const lastRead = markers.get(room)?.get(user);
      const unread = Math.min(cap, lastRead === undefined ? entries.length : entries.filter((e) => compareLogIds(e.id, lastRead) > 0).length);
      const row = entries
        .slice(-LAST_MESSAGE_WINDOW)
        .reverse()
        .find((e) => fieldOf(e.fields, "e") === "message");
      const entry = row && decodeEntry(row.id, row.fields);
      return { ...(lastRead !== undefined && { lastRead }), unread, ...(entry && { last: { ...entry, room } }) };
    },
  };
}
