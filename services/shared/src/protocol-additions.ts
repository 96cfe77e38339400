import { createHash } from "node:crypto";
import { z } from "zod";
import { userId } from "./notification.js";
import { logId, messageText, roomName, type ReplayedEntry, type User } from "./protocol.js";

/**
 * Protocol v1 additions of issue 19: typing, direct messages, edits and deletes, read markers and
 * the room list. Each is a new event or an optional field, so older clients are unaffected.
 */

const payload = { error: "payload must be an object" };

/** `typing {room}`: tells the others in the room; not stored. */
export const typingRequest = z.strictObject({ room: roomName }, payload);
/** `dm {user}`: the direct-message room with that user. */
export const dmRequest = z.strictObject({ user: userId }, payload);
/** `edit {room, id, text}`: replaces the text of one's own message. */
export function editRequest(maxText: number) {
  return z.strictObject({ room: roomName, id: logId, text: messageText(maxText) }, payload);
}
/** `delete {room, id}`: removes one's own message (any message, for a moderator). */
export const deleteRequest = z.strictObject({ room: roomName, id: logId }, payload);
/** `read {room, id}`: the user has read `room` up to entry `id`. */
export const readRequest = z.strictObject({ room: roomName, id: logId }, payload);
/** `rooms {}`: the rooms this connection is in. */
export const roomsRequest = z.strictObject({}, payload);

export type TypingRequest = z.infer<typeof typingRequest>;
export type DmRequest = z.infer<typeof dmRequest>;
export type EditRequest = z.infer<ReturnType<typeof editRequest>>;
export type DeleteRequest = z.infer<typeof deleteRequest>;
export type ReadRequest = z.infer<typeof readRequest>;

/** The most `unread` says: 100 means "more than 99" (a page shows "99+"). */
export const UNREAD_CAP = 100;

/** How often one user's `typing` in one room is passed on; the rest is dropped. */
export const TYPING_INTERVAL_MS = 2000;

/** Direct-message rooms are named `dm:` and 32 hex digits; no other room may take the prefix. */
export const DM_PREFIX = "dm:";

/**
 * The direct-message room of two users: the same whoever asks. A hash, because user ids (up to
 * 128 characters of any script) do not fit a room name; length-prefixed, so that ids containing
 * the separator cannot meet.
 */
export function dmRoom(a: string, b: string): string {
  const [x, y] = [a, b].sort();
  const hash = createHash("sha256").update(`${x!.length}:${x}|${y!.length}:${y}`).digest("hex");
  return `${DM_PREFIX}${hash.slice(0, 32)}`;
}

/** Server → client: `typing {room, user}`, sent volatile. */
export interface TypingEvent {
  room: string;
  user: User;
}

/** Server → client: someone started a direct conversation; join `room` to read it. */
export interface DmEvent {
  room: string;
  user: User;
}

/** Server → client: the user's read marker moved (on another of their connections). */
export interface ReadEvent {
  room: string;
  id: string;
}

/** The `dm` ack. */
export interface DmAck {
  room: string;
}

/** One room of the `rooms` ack. */
export interface RoomSummary {
  room: string;
  /** For a direct-message room: the other user's id. */
  dm?: string;
  lastRead?: string;
  /** Entries after `lastRead` (every entry without one), at most `UNREAD_CAP`. */
  unread: number;
  /** The newest message, if one of the room's last 20 entries is a message. */
  last?: ReplayedEntry;
}

/** The `rooms` ack. */
export interface RoomsAck {
  rooms: RoomSummary[];
}

/** The `edit` and `delete` acks: the id of the entry that records the change. */
export interface AmendAck {
  logId: string;
  ts: number;
}
