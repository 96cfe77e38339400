import { z } from "zod";
import { LOG_ID_PATTERN } from "./log-id.js";

export * from "./log-id.js";

/*
 * Protocol v1: the shapes every client and service agree on. These schemas both validate the
 * wire and document it (docs/protocol.md quotes them), so the two can never drift apart.
 */

/** Error codes a client can act on. Never renamed: clients switch on them. */
export type ErrorCode =
  "bad_request" | "not_in_room" | "unknown_event" | "unavailable" | "unauthorized" | "forbidden" | "rate_limited" | "limit_exceeded" | "internal" | "not_found";

export interface ProtocolError {
  code: ErrorCode;
  message: string;
  /** With `rate_limited`: when a retry can succeed. */
  retryAfterMs?: number;
}

/** Every ack is one of these two shapes, never silence. */
export type Ack<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ProtocolError };

export function ok<T extends object>(body: T): { ok: true } & T {
  return { ok: true, ...body };
}

export function fail(code: ErrorCode, message: string): { ok: false; error: ProtocolError } {
  return { ok: false, error: { code, message } };
}

export function rateLimited(what: string, retryAfterMs: number): { ok: false; error: ProtocolError } {
  return { ok: false, error: { code: "rate_limited", message: `too many ${what}; retry in ${retryAfterMs} ms`, retryAfterMs } };
}

/** Room names: 1–64 characters of `[A-Za-z0-9_.:-]`. */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export const roomName = z.string({ error: "must be a string" }).regex(ROOM_NAME_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 _ . : -");

export const logId = z.string({ error: "must be a string" }).regex(LOG_ID_PATTERN, "must be a message id like 1700000000000-0");

/**
 * A character that shows something: not a space (`\p{Z}`), not a combining mark (`\p{M}`), and not
 * one of the letters and symbols that render as nothing (Hangul fillers U+115F, U+1160, U+3164,
 * U+FFA0, the blank Braille pattern U+2800, Khmer's inherent vowels U+17B4-5).
 */
// Each code point in the class stands alone on purpose (U+17B4 and U+17B5 are marks in their own
// right, not a pair to combine), which is what this rule cannot tell.
// eslint-disable-next-line no-misleading-character-class
const VISIBLE = /[^\p{Z}\p{M}\u115F\u1160\u3164\uFFA0\u2800\u17B4\u17B5]/u;

/**
 * Display names: 1–32 printable characters (counted as Unicode code points). Control and format
 * characters (`\p{C}`: this includes the bidi controls U+202A-202E, U+2066-2069, U+200E-200F and
 * zero-width joiners) and line separators are refused, and so is a name with nothing visible in
 * it (blanks, invisible fillers, combining marks alone), since it could pass for anyone's.
 */
export const displayName = z
  .string({ error: "must be a string" })
  .regex(/^[^\p{C}\p{Zl}\p{Zp}]{1,32}$/u, "must be 1-32 printable characters, without control or bidi characters")
  .refine((name) => VISIBLE.test(name), "must have a visible character (not only blanks, fillers or combining marks)");

/** Counts code points, but only when the cheap UTF-16 length cannot already decide. */
function withinCodePoints(text: string, max: number): boolean {
  if (text.length <= max) return true;
  if (text.length > 2 * max) return false;
  let count = 0;
  for (const _ of text) if (++count > max) return false;
  return true;
}

/**
 * Removed from message text: NUL (which C-based consumers read as the end of the text), and the
 * bidi embedding, override and isolate controls U+202A-202E and U+2066-2069, with which a text can
 * show its characters in another order than they are stored (a "Trojan Source" message). The
 * implicit marks LRM, RLM and ALM stay: they only nudge neutral characters.
 */
// NUL is matched on purpose: it is removed from message text.
// eslint-disable-next-line no-control-regex
const STRIPPED = /[\u0000\u202A-\u202E\u2066-\u2069]/g;

/** Message text: 1 to `max` characters (Unicode code points), with NUL and bidi controls removed. */
export function messageText(max: number) {
  return (
    z
      .string({ error: "must be a string" })
      .min(1, "must not be empty")
      .refine((text) => withinCodePoints(text, max), `must be at most ${max} characters`)
      .transform((text) => text.replace(STRIPPED, ""))
      // A message nobody can see is a mistake, not a message.
      .refine((text) => text.length > 0, "must not be empty once NUL and bidi controls are removed")
      .refine((text) => text.length === 0 || text.trim().length > 0, "must not be blank (only whitespace)")
  );
}

/** Handshake `auth` in open mode. Unknown keys are ignored so newer clients still connect. */
export const openAuth = z.object({ name: displayName }, { error: "auth must be an object with a name" });

/** A sender's own id for a message, so that a retry is recognised: 1–64 of `[A-Za-z0-9_.:-]`. */
export const clientMsgId = z.string({ error: "must be a string" }).regex(/^[A-Za-z0-9_.:-]{1,64}$/, "must be 1-64 characters of A-Z a-z 0-9 _ . : -");

export const joinRequest = z.strictObject({ room: roomName, since: logId.optional() }, { error: "payload must be an object" });
/** Most entries one `history` page holds, and how many it holds without `limit`. */
export const HISTORY_PAGE_MAX = 100;
export const HISTORY_PAGE_DEFAULT = 50;

/** `history`: page back (`before`) or forward (`after`, as a catch-up goes on) through a room's log. */
export const historyRequest = z
  .strictObject(
    {
      room: roomName,
      before: logId.optional(),
      after: logId.optional(),
      limit: z
        .number({ error: "must be a number" })
        .int("must be a whole number")
        .min(1, "must be at least 1")
        .max(HISTORY_PAGE_MAX, `must be at most ${HISTORY_PAGE_MAX}`)
        .optional(),
    },
    { error: "payload must be an object" },
  )
  .refine((r) => r.before === undefined || r.after === undefined, "give before or after, not both");
export const leaveRequest = z.strictObject({ room: roomName }, { error: "payload must be an object" });
export function messageRequest(maxText: number) {
  return z.strictObject({ room: roomName, text: messageText(maxText), clientMsgId: clientMsgId.optional() }, { error: "payload must be an object" });
}

export type JoinRequest = z.infer<typeof joinRequest>;
export type LeaveRequest = z.infer<typeof leaveRequest>;
export type HistoryRequest = z.infer<typeof historyRequest>;
export type MessageRequest = z.infer<ReturnType<typeof messageRequest>>;

export interface User {
  id: string;
  name: string;
}

/** What every member of a room receives for a message. */
export interface ChatMessage {
  /** The message's id in the room's log. */
  id: string;
  /** The id of the room's entry before this one (`0-0` for the first): a client that holds a
   * different last id has missed something and re-joins with `since`. */
  prev: string;
  room: string;
  text: string;
  user: User;
  ts: number;
}

/**
 * An entry of the room log as a catch-up or a `history` page returns it: the live payload plus the
 * event's name. `id` is always its id in the room's log; notifications also carry `eventId` (the
 * notifier's id) and `logId`, a deprecated alias of `id`.
 */
export type ReplayedEntry = { event: string; id: string; prev: string; ts: number; eventId?: string; logId?: string } & Record<string, unknown>;

/**
 * How a read of the log ended, in the `join` ack (with `since`) and the `history` ack. The two
 * reasons for "not everything" are separate fields, so a client never mistakes one for the other:
 * - `more`: the answer was capped; page on with `history` from `cursor`. Nothing is lost.
 * - `gap`: entries that belong here were trimmed from the log; no request brings them back.
 * `complete` is `!gap && !more` going forward (`since`, `after`); going back it is `!more`.
 */
export interface ReadStatus {
  complete: boolean;
  gap: boolean;
  more: boolean;
  /** With `more`: the id to pass as `after` (forward) or `before` (back) for the next page. */
  cursor?: string;
}

/**
 * The `join` ack. `lastRead` (the user's read marker, when set) and `unread` (entries after it,
 * at most `UNREAD_CAP`) came with issue 19: older servers leave them out.
 */
/**
 * `members`: sorted by name; all of them unless the room is big (more than the server's
 * PRESENCE_ANNOUNCE_MAX_MEMBERS), then the first ones. `memberCount`: how many there are in all
 * (servers before it did not send it, and listed every member).
 */
export type JoinAck = { room: string; members: User[]; memberCount?: number; messages: ReplayedEntry[]; lastRead?: string; unread?: number } & ReadStatus;

/** The `history` ack. */
export type HistoryAck = { room: string; messages: ReplayedEntry[] } & ReadStatus;

export interface PresenceEvent {
  room: string;
  user: User;
  action: "join" | "leave";
}

/** One line a problem: `room: must be 1-64 characters …`. */
export function describeIssues(error: z.ZodError): string {
  const message = error.issues
    .slice(0, 5)
    .map((issue) => {
      if (issue.code === "unrecognized_keys") return `unknown field(s): ${issue.keys.slice(0, 5).map(quoted).join(", ")}`;
      const path = issue.path
        .slice(0, 4)
        .map((key) => quoted(String(key)))
        .join(".");
      return path ? `${path}: ${messageOf(issue)}` : issue.message;
    })
    .join("; ");
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
}

/**
 * A field's problem in words a person acts on. A missing field says so, whatever the schema's
 * message for a wrong type (that takes parsing with `reportInput`, as `validate` does), and zod's
 * own "Invalid input: expected number, received string" becomes "must be a number".
 */
function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code !== "invalid_type") return issue.message;
  if ("input" in issue && issue.input === undefined && !issue.message.startsWith("is required")) return "is required";
  if (issue.message.startsWith("Invalid input")) return `must be ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
  return issue.message;
}

/** Error messages echo field names, which the sender chose: they stay short and printable. */
const MAX_MESSAGE = 300;
function quoted(key: string): string {
  const shown = key.length > 32 ? `${key.slice(0, 32)}…` : key;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(shown) ? shown : JSON.stringify(shown);
}

/** Validates a payload; the error is ready to be sent as an ack. */
export function validate<T>(schema: z.ZodType<T>, payload: unknown): { ok: true; data: T } | { ok: false; error: ProtocolError } {
  // `reportInput` lets describeIssues tell a missing field from one of the wrong type.
  const result = schema.safeParse(payload, { reportInput: true });
  if (result.success) return { ok: true, data: result.data };
  return fail("bad_request", describeIssues(result.error));
}

/**
 * The key prefix of the Socket.IO Redis channels. Chat pods (adapter) and the notifier (emitter)
 * must agree on it, so it lives here once.
 */
export const BUS_KEY = "socket.io";
