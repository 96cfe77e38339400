import { z } from "zod";
import {
  describeIssues,
  pairsOf,
  validate,
  eventId,
  eventType,
  roomName,
  userId,
  type BroadcastNotification,
  type RoomNotification,
  type UserNotification,
} from "@chat/shared";

/** Who an event goes to. */
export type Target = { kind: "room"; room: string } | { kind: "user"; user: string } | { kind: "broadcast" };

/** An event that passed validation, from either intake. */
export interface NotifierEvent {
  id: string;
  target: Target;
  type: string;
  data: unknown;
}

/** Validation's answer: the value, or one line saying what is wrong (and whether it is size). */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string; tooLarge?: boolean };

const failed = (reason: string, tooLarge = false): { ok: false; reason: string; tooLarge: boolean } => ({
  ok: false,
  reason,
  tooLarge,
});

/** The payload clients receive; its shape says which kind of target it came through. */
export function toNotification(event: NotifierEvent, ts: number): RoomNotification | UserNotification | BroadcastNotification {
  const { id, type, data, target } = event;
  switch (target.kind) {
    case "room":
      return { id, eventId: id, room: target.room, type, data, ts };
    case "user":
      return { id, eventId: id, user: target.user, type, data, ts };
    case "broadcast":
      return { id, eventId: id, type, data, ts };
  }
}

/** Checks a URL path parameter against the schema for its target. */
export function checkTarget(kind: "room" | "user", value: string): Checked<Target> {
  const result = (kind === "room" ? roomName : userId).safeParse(value);
  if (!result.success) return failed(`${kind}: ${describeIssues(result.error)}`);
  return { ok: true, value: kind === "room" ? { kind, room: result.data } : { kind, user: result.data } };
}

const httpBody = z.strictObject(
  {
    type: eventType,
    data: z.unknown().nonoptional({ error: "is required (any JSON value, null included)" }),
    id: eventId.optional(),
  },
  { error: "the body must be a JSON object { type, data, id? }" },
);

/** What `data` may be, on either intake. */
export interface DataLimits {
  /** Largest `data`, in bytes of compact JSON (the stream: of the text as sent). */
  maxBytes: number;
  /** Deepest nesting of arrays and objects; a scalar is depth 0, `[1]` depth 1. */
  maxDepth: number;
}

/**
 * Whether `value` nests at most `max` arrays or objects deep. Iterative, with an explicit stack:
 * the point is to refuse what would overflow a recursive encoder (Socket.IO's msgpack), so the
 * check itself must not recurse.
 */
export function nestsWithin(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    if (depth + 1 > max) return false;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return true;
}

/** The one check of `data` both intakes run, once it is parsed: its depth. */
function checkDepth(data: unknown, { maxDepth }: DataLimits): Checked<unknown> {
  if (!nestsWithin(data, maxDepth)) return failed(`data: nests arrays or objects more than ${maxDepth} deep`);
  return { ok: true, value: data };
}

/**
 * The body of `POST …/events`. `data` is any JSON value (null included) but must be present, so a
 * misspelt field never turns into an event without its payload.
 */
export function checkHttpBody(body: unknown, limits: DataLimits): Checked<{ type: string; data: unknown; id?: string | undefined }> {
  const result = validate(httpBody, body);
  if (!result.ok) return failed(result.error.message);
  // Depth first: measuring the size serialises `data`, and serialising recurses.
  const deep = checkDepth(result.data.data, limits);
  if (!deep.ok) return deep;
  // Measured as the compact JSON clients will receive, whatever whitespace the caller sent.
  const size = Buffer.byteLength(JSON.stringify(result.data.data));
  if (size > limits.maxBytes) return failed(`data: is ${size} bytes, more than the ${limits.maxBytes} allowed`, true);
  return { ok: true, value: result.data };
}

/** Index, among the values of `flat`, of the `data` field (there is exactly one by then). */
function dataIndex(flat: string[]): number {
  return pairsOf(flat).findIndex(([name]) => name === "data");
}

const STREAM_FIELDS = new Set(["room", "user", "broadcast", "type", "data", "id"]);
const TARGET_FIELDS = ["room", "user", "broadcast"] as const;

/**
 * One stream entry, as ioredis returns its fields: `[name, value, name, value, …]`. An entry
 * without an `id` field gets one derived from its entry id, so a redelivery of it dedupes too.
 */
export function parseStreamEntry(entryId: string, flat: string[], limits: DataLimits, sizes?: number[]): Checked<NotifierEvent> {
  const fields = new Map<string, string>();
  const unknown: string[] = [];
  for (const [name, value] of pairsOf(flat)) {
    if (!STREAM_FIELDS.has(name)) unknown.push(name.slice(0, 32));
    else if (fields.has(name)) return failed(`field ${name} is given twice`);
    else fields.set(name, value);
  }
  if (unknown.length) return failed(`unknown field(s): ${unknown.slice(0, 5).join(", ")}`);

  const targets = TARGET_FIELDS.filter((name) => fields.has(name));
  if (targets.length === 0) return failed("no target: one of the fields room, user or broadcast is required");
  if (targets.length > 1) return failed(`several targets (${targets.join(", ")}): give exactly one`);
  let target: Target;
  const [kind] = targets as [(typeof TARGET_FIELDS)[number]];
  if (kind === "broadcast") {
    if (!["1", "true"].includes(fields.get("broadcast")!)) return failed("broadcast: must be 1 or true");
    target = { kind };
  } else {
    const checked = checkTarget(kind, fields.get(kind)!);
    if (!checked.ok) return checked;
    target = checked.value;
  }

  const type = eventType.safeParse(fields.get("type"));
  if (!type.success) return failed(fields.has("type") ? `type: ${describeIssues(type.error)}` : "type: is required");

  const rawId = fields.get("id");
  const id = rawId === undefined ? { success: true as const, data: `s-${entryId}` } : eventId.safeParse(rawId);
  if (!id.success) return failed(`id: ${describeIssues(id.error)}`);

  const raw = fields.get("data");
  if (raw === undefined) return failed("data: is required (JSON text, e.g. {} or null)");
  // Checked before parsing, so a huge entry costs no parse; the raw text is what the producer sent.
  // The reader may have cut a long value short (stream-read.ts): `sizes` then holds the real length.
  const size = sizes?.[dataIndex(flat)] ?? Buffer.byteLength(raw);
  if (size > limits.maxBytes) return failed(`data: is ${size} bytes, more than the ${limits.maxBytes} allowed`, true);
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return failed("data: is not valid JSON");
  }
  const deep = checkDepth(data, limits);
  if (!deep.ok) return deep;

  return { ok: true, value: { id: id.data, target, type: type.data, data } };
}
