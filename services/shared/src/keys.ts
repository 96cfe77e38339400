import calculateSlot from "cluster-key-slot";
import { sameSlotTag } from "./slot-tag.js";

/**
 * Every Redis key the product uses, in one place, so that the key space can be read in one file.
 * The values never change: renaming one would orphan what a running deployment has stored.
 *
 * `{...}` in a name is a Redis Cluster hash tag: the keys of one room (or one user) share a slot,
 * as a script that touches several of them requires. The pub/sub channels are not keys: they are
 * named in bus.ts.
 */

/** The prefix of the chat's own keys (rooms' logs, presence, connection counts). */
export const CHAT_PREFIX = "chat";

/**
 * Which message bus the deployment runs (bus-mode.ts): `classic` or `sharded`, written by the
 * first process to start.
 */
export const BUS_MODE_KEY = "chat:bus:mode";

/** The chat pods' auth mode (auth-mode.ts): `open` or `jwt`, pinned like the bus mode. */
export const AUTH_MODE_KEY = "chat:auth:mode";

/** The denylist entry of a revoked token; it expires when the token would have. */
export function revokedTokenKey(jti: string): string {
  return `chat:revoked:${jti}`;
}

/**
 * A room's log (room-log.ts), a Redis Stream, its append dedupe keys, and its read markers
 * (room-log-amend.ts: a hash, user id → last-read id). `tag` is the hash tag: the room's name, or
 * its sharded channel on a cluster in sharded mode (room-log-append.ts).
 */
export const roomLogKeys = (prefix: string, tag: string) => ({
  stream: `${prefix}:log:{${tag}}`,
  dedupe: (scope: string) => `${prefix}:dedupe:{${tag}}:${scope}`,
  read: `${prefix}:read:{${tag}}`,
});

/**
 * A direct-message room's two user ids (the chat's dms.ts), a JSON pair, expiring with the
 * room's log. `room` is `dm:<a>:<b>`.
 */
export const dmKey = (prefix: string, room: string): string => `${prefix}:dm:${room}`;

/**
 * One user's typing pass in a room (the chat's typing.ts): set NX for the throttle interval, so
 * that `typing` goes out at most once per interval across pods.
 */
export const typingKey = (prefix: string, room: string, user: string): string => `${prefix}:typing:{${room}}:${user}`;

/** Presence (the chat's presence.ts): who is in which room, on which pod. */
export interface PresenceKeys {
  /** A room's hash: one field `<instance>|<user id>` per user and pod instance. */
  room: (room: string) => string;
  /** A pod instance's liveness key, renewed by its heartbeat. */
  instance: (id: string) => string;
  /** The set of every pod instance that has registered and not yet left or been reaped. */
  instances: string;
  /** The set of rooms a pod instance has (had) local members in. */
  roomsOf: (id: string) => string;
  /** A user's connection counts, one field per pod instance (the per-user connection cap). */
  connections: (userId: string) => string;
}

export const presenceKeys = (prefix: string): PresenceKeys => ({
  room: (room) => `${prefix}:presence:{${room}}`,
  instance: (id) => `${prefix}:instance:${id}`,
  instances: `${prefix}:instances`,
  roomsOf: (id) => `${prefix}:instance-rooms:${id}`,
  connections: (userId) => `${prefix}:connections:{${userId}}`,
});

/**
 * The `keyPrefix` of each rate limit (rate-limit.ts, which names the keys under it: see
 * `rateLimitKeys`) and of the storage quotas (storage-quota.ts: `<prefix>:<user|room|total>:…`).
 */
export const LIMIT_PREFIXES = {
  messages: "chat:rl:msg",
  joins: "chat:rl:join",
  userReads: "chat:rl:reads",
  connections: "chat:rl:conn",
  userConnections: "chat:rl:uconn",
  members: "chat:rl:members",
  quota: "chat:quota",
  notifier: "notifier:rl",
} as const;

/**
 * The Redis keys a rate limit counts `key` in: rate-limiter-flexible's `<keyPrefix>:<key>`, and the
 * burst limiter's under `<keyPrefix>:burst`. Each holds the points used in its window, and expires
 * with the window.
 */
export function rateLimitKeys({ keyPrefix }: { keyPrefix: string }, key: string): [base: string, burst: string] {
  return [`${keyPrefix}:${key}`, `${keyPrefix}:burst:${key}`];
}

/** Every event id the notifier published lives under this prefix for the dedupe window. */
export const NOTIFIER_DEDUPE_PREFIX = "notifier:seen:";

/**
 * The dedupe key of a user or broadcast event's id. With `sameSlotAs` (a sharded channel, on a
 * Redis Cluster) the key takes a hash tag of that channel's slot, since the script that sets it
 * SPUBLISHes there: an id is then remembered per target, as room events' ids always were.
 */
export function notifierDedupeKey(id: string, sameSlotAs?: string): string {
  return sameSlotAs === undefined ? NOTIFIER_DEDUPE_PREFIX + id : `${NOTIFIER_DEDUPE_PREFIX}{${sameSlotTag(sameSlotAs)}}:${id}`;
}

/** The notifier's input stream (`NOTIFIER_STREAM`'s default) and where its bad entries go. */
export const NOTIFIER_STREAM_DEFAULT = "notifier:events";
/**
 * On a Redis Cluster the dead letters must share the stream's slot (one MULTI moves an entry and
 * acks it): `notifier:events` then puts them in `{notifier:events}:dead`. A stream named with its
 * own hash tag keeps `<stream>:dead`, as does every stream on one server or Sentinel.
 */
export function deadLetterStreamOf(stream: string, { cluster = false }: { cluster?: boolean } = {}): string {
  const plain = `${stream}:dead`;
  return !cluster || calculateSlot(plain) === calculateSlot(stream) ? plain : `{${sameSlotTag(stream)}}:dead`;
}
