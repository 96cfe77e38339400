import { z } from "zod";

/**
 * Notifications: events that other backends push into chat through the notifier. Chat pods only
 * relay them (the Socket.IO adapter does the work), but the names and shapes are part of the
 * protocol clients see, so they live here beside the chat protocol.
 */

/** The Socket.IO event name clients listen to. */
export const NOTIFICATION_EVENT = "notification";

/** Event ids: 1–128 characters of `[A-Za-z0-9_.:-]`, so they are safe inside a Redis key. */
export const EVENT_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export const eventId = z.string({ error: "must be a string" }).regex(EVENT_ID_PATTERN, "must be 1-128 characters of A-Z a-z 0-9 _ . : -");

/** Event types, e.g. `order.shipped`: 1–64 characters of `[A-Za-z0-9_.:-]`, like room names. */
export const EVENT_TYPE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export const eventType = z.string({ error: "must be a string" }).regex(EVENT_TYPE_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 _ . : -");

/**
 * User ids: 1–128 printable characters (code points). In open mode the id is the display name, so
 * spaces and any script are allowed; control, format and line-separator characters never are.
 */
export const userId = z.string({ error: "must be a string" }).regex(/^[^\p{C}\p{Zl}\p{Zp}]{1,128}$/u, "must be 1-128 printable characters");

/**
 * The per-user room every chat socket joins. `@` is not allowed in room names, so no client can
 * join another user's room.
 */
export function userRoom(id: string): string {
  return `@user:${id}`;
}

interface NotificationBase {
  /**
   * The entry's id: for a room event its id in the room's log (like a message's), for a user or
   * broadcast event (which no log keeps) the event id.
   */
  id: string;
  /** The id the sender gave the event (or the notifier generated): what its dedupe is keyed on. */
  eventId: string;
  type: string;
  data: unknown;
  /** Milliseconds since the epoch, when the notifier published it. */
  ts: number;
}

/**
 * What a member of `room` receives. Room events go through the room's log like chat messages:
 * `id` is their id there and `prev` the entry before, so clients catch up on them too.
 */
export interface RoomNotification extends NotificationBase {
  room: string;
  /** @deprecated the same as `id`; kept for clients written when `id` was the event id. */
  logId: string;
  prev: string;
}

/** What every connection of `user` receives. */
export interface UserNotification extends NotificationBase {
  user: string;
}

/** What every connected client receives. */
export type BroadcastNotification = NotificationBase;

export type Notification = RoomNotification | UserNotification | BroadcastNotification;

/**
 * The room every connection authenticated by the token `jti` is in, so that revoking the token
 * can reach them on every pod.
 */
export function sessionRoom(jti: string): string {
  return `@jti:${jti}`;
}

/**
 * How far ahead a revocation can reach: the notifier refuses to denylist a token for longer, so
 * the chat refuses tokens that live longer (`JWT_MAX_LIFETIME_SECONDS`): they could not be revoked.
 */
export const DENYLIST_MAX_SECONDS = 366 * 86_400;

export { revokedTokenKey } from "./keys.js";

/** The event that carries a `SessionEnded`. */
export const SESSION_ENDED_EVENT = "session_ended";

/** Told to a connection just before the server ends it because of its token. */
export interface SessionEnded {
  /** `disconnected`: a backend ended the user's connections (`POST /v1/users/:userId/disconnect`). */
  reason: "token_expired" | "token_revoked" | "disconnected";
  /** True when reconnecting with a fresh token makes sense. */
  reconnect: boolean;
  /** With `disconnected`: the backend's reason, for people, when it gave one. */
  message?: string;
}
