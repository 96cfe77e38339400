import { z } from "zod";
import { roomName } from "./protocol.js";
import { userId } from "./notification.js";
import { presenceKeys } from "./keys.js";

/**
 * What the notifier's server API (docs/server-api.md) and the chat pods agree on: the moderation
 * channel and its commands, where bans and mutes live, the presence and pod-stats keys the admin
 * reads use, and the webhook stream. Key names are code both services run, so they live here once.
 */

/**
 * The plain pub/sub channel moderation commands travel on. Not the Socket.IO bus: a command is
 * acted on by each pod's server code (leave a room and tell the room, end a connection), which an
 * emitted packet cannot do. Classic `PUBLISH` reaches every pod in both bus modes.
 */
export const MODERATION_CHANNEL = "chat:moderation";

const reason = z.string().max(200).optional();

/** A moderation command, as published on `MODERATION_CHANNEL` (JSON). */
export const moderationCommand = z.discriminatedUnion("op", [
  /** The user leaves the room on every pod (a ban does the same, after it is stored). */
  z.object({ op: z.literal("kick"), room: roomName, userId, reason }),
  /** The room's bans or mutes changed: pods forget what they cached of them. */
  z.object({ op: z.literal("rules"), room: roomName }),
  /** Every connection of the user is ended, on every pod; the user may reconnect. */
  z.object({ op: z.literal("disconnect"), userId, reason }),
]);
export type ModerationCommand = z.infer<typeof moderationCommand>;

/** The hashes of a room's bans and mutes: one field per user, its value a `ModerationRule` in JSON. */
export const bansKey = (room: string): string => `chat:bans:{${room}}`;
export const mutesKey = (room: string): string => `chat:mutes:{${room}}`;

/** One ban or mute. `until` is ms since the epoch, absent when it lasts until lifted. */
export interface ModerationRule {
  reason?: string;
  at: number;
  until?: number;
}

/** Parses a stored rule; undefined when malformed or expired at `now`. */
export function liveRule(stored: string | undefined, now = Date.now()): ModerationRule | undefined {
  if (stored === undefined) return undefined;
  try {
    const rule = JSON.parse(stored) as ModerationRule;
    if (typeof rule !== "object" || rule === null || typeof rule.at !== "number") return undefined;
    if (rule.until !== undefined && rule.until <= now) return undefined;
    return rule;
  } catch {
    return undefined;
  }
}

/**
 * Stores a rule in a room's hash and keeps the hash's own TTL at its longest rule (none if one is
 * permanent), so that Redis 7.0, without per-field expiry, still drops a room's expired rules.
 * Expired fields before that are skipped by readers and pruned here.
 */
export const PUT_RULE_SCRIPT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local now = tonumber(ARGV[3])
local longest = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, rule = pcall(cjson.decode, all[i + 1])
  local until_ = ok and type(rule) == 'table' and rule['until'] or nil
  if not ok or type(rule) ~= 'table' then
    redis.call('HDEL', KEYS[1], all[i])
  elseif until_ == nil then
    longest = -1
  elseif until_ <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif longest >= 0 and until_ > longest then
    longest = until_
  end
end
if longest < 0 then redis.call('PERSIST', KEYS[1]) elseif longest > 0 then redis.call('PEXPIREAT', KEYS[1], longest) end
return 1`;

/** Presence's keys as the chat pods write them (their prefix is `chat`); the admin reads read them. */
export const CHAT_PRESENCE_KEYS = presenceKeys("chat");

/** A chat pod's figures for `GET /v1/stats`, renewed with its liveness (pod-stats.ts). */
export const podStatsKey = (instance: string): string => `chat:pod-stats:${instance}`;
export interface PodStats {
  pod: string;
  instance: string;
  connections: number;
  rooms: number;
  ready: boolean;
  /** When the pod wrote this, ms since the epoch. */
  at: number;
}

/** The Redis Stream chat pods add webhook events to, and the notifier delivers from. */
export const WEBHOOK_STREAM = "chat:webhooks";
/** Events that failed every try, per endpoint; `POST /v1/webhooks/replay` moves them back. */
export const WEBHOOK_DEAD_STREAM = "chat:webhooks:dead";
/** The events the notifier delivers (comma-separated), so that pods add only those; it expires when no notifier renews it. */
export const WEBHOOK_EVENTS_KEY = "chat:webhooks:events";
/** Per room: each present user's count of pod instances, for `room.occupied` and `member.*`. */
export const webhookMembersKey = (room: string): string => `chat:webhooks:members:{${room}}`;
/** Per room: `<instance>|<user>` fields, so a pod's part is undone exactly once. */
export const webhookPresenceKey = (room: string): string => `chat:webhooks:presence:{${room}}`;

export const WEBHOOK_EVENT_TYPES = ["room.occupied", "room.vacated", "member.joined", "member.left", "message.created", "message.deleted"] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
/** The default of `WEBHOOK_EVENTS`: the message events are off, since they carry every message. */
export const DEFAULT_WEBHOOK_EVENTS: WebhookEventType[] = ["room.occupied", "room.vacated", "member.joined", "member.left"];

/**
 * A room's log stream on a standalone Redis (room-log.ts names it so; on a Redis Cluster in sharded
 * mode the hash tag is the room's channel instead, which the server API does not support yet).
 */
export const roomLogKey = (room: string): string => `chat:log:{${room}}`;

/** The webhook stream is capped (`MAXLEN ~`): events this far behind an endpoint that never answers are dropped. */
export const WEBHOOK_STREAM_MAXLEN = 100_000;
