import {
  isRedisCluster,
  WEBHOOK_EVENTS_KEY,
  WEBHOOK_STREAM,
  WEBHOOK_STREAM_MAXLEN,
  messageText,
  CHAT_PRESENCE_KEYS,
  webhookMembersKey,
  webhookPresenceKey,
  type Logger,
  type RedisClient,
  type User,
} from "@chat/shared";
import type { Handler } from "./events.js";
import type { Presence } from "./presence.js";

/*
 * The chat pods' half of the webhooks (docs/server-api.md#webhooks): events are added to the
 * stream `chat:webhooks`, never sent over HTTP from here. Membership events come from scripts that
 * keep their own count per room, atomically, so `room.occupied` and `room.vacated` alternate
 * exactly, cluster-wide, however many pods join and leave at once, and each room's events enter
 * the stream in the order they happened. On a Redis Cluster these scripts would touch keys of
 * two slots (the room's counts and the one stream), so there the membership events are not added
 * (logged once); `message.created` is one XADD and is added everywhere.
 */

/** XADDs a webhook event when its type is on (`ARGV[1]` holds the enabled types as `,a,b,`). */
const EMIT = `
local function emit(kind, room, data)
  if string.find(ARGV[1], ',' .. kind .. ',', 1, true) then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'type', kind, 'room', room, 'data', data, 'ts', ARGV[3])
  end
end
`;

/** A user's first connection on this pod entered the room: ARGV[4] field, [5] user id, [6] room, [7] user JSON. */
const JOIN_SCRIPT = `${EMIT}
if redis.call('HSETNX', KEYS[1], ARGV[4], 1) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[5], 1) ~= 1 then return 1 end
if redis.call('HLEN', KEYS[2]) == 1 then emit('room.occupied', ARGV[6], '{}') end
emit('member.joined', ARGV[6], '{"user":' .. ARGV[7] .. '}')
return 2`;

/**
 * Ends the user's presence in the room: `whole` (ARGV[8] = 1) drops every pod's share (a dead
 * pod's user, reaped), else this pod's field only. A share left on another pod counts only while
 * that pod's liveness key (ARGV[9] .. instance) is there, so a dead pod never keeps a user in.
 */
const LEAVE_SCRIPT = `${EMIT}
local suffix = '|' .. ARGV[5]
local function others()
  local alive = 0
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, -#suffix) == suffix then
      if ARGV[8] ~= '1' and redis.call('EXISTS', ARGV[9] .. string.sub(field, 1, #field - #suffix)) == 1 then
        alive = alive + 1
      else
        redis.call('HDEL', KEYS[1], field)
      end
    end
  end
  return alive
end
if ARGV[8] ~= '1' and redis.call('HDEL', KEYS[1], ARGV[4]) == 0 then return 0 end
local left = 0
if ARGV[8] ~= '1' then left = redis.call('HINCRBY', KEYS[2], ARGV[5], -1) end
if left > 0 or ARGV[8] == '1' then left = others() end
if left > 0 then
  redis.call('HSET', KEYS[2], ARGV[5], left)
  return 1
end
if redis.call('HDEL', KEYS[2], ARGV[5]) == 0 and ARGV[8] == '1' then return 0 end
emit('member.left', ARGV[6], '{"user":' .. ARGV[7] .. '}')
if redis.call('HLEN', KEYS[2]) == 0 then emit('room.vacated', ARGV[6], '{}') end
return 2`;

const MEMBERSHIP = ["room.occupied", "room.vacated", "member.joined", "member.left"];

/** The text as it was stored (NUL and bidi controls removed): the handler validated it already, so no length cap here. */
const storedText = messageText(Number.MAX_SAFE_INTEGER);

export interface WebhookEventsOptions {
  redis: RedisClient;
  log: Logger;
  instanceId: string;
  /**
   * How often the enabled events are read again from Redis (the notifier writes them).
   * @default 5000
   */
  refreshMs?: number;
}

export interface WebhookEvents {
  /** Wraps presence: a user's first connection here entering a room, and the last leaving it, are counted. */
  wrap(presence: Presence): Presence;
  /** A user of a dead pod is gone from `room` (the reaper's `onExpired`). */
  expired(room: string, user: User): void;
  /** `message.created` for each message `handler` stored, added once the ack is made, never awaited by it. */
  afterMessage(handler: Handler): Handler;
  stop(): void;
}

/** Adds the enabled webhook events to the stream; when the notifier enables none, it does nothing at all. */
export function createWebhookEvents({ redis, log, instanceId, refreshMs = 5000 }: WebhookEventsOptions): WebhookEvents {
  let enabled = "";
  const refresh = () =>
    redis.get(WEBHOOK_EVENTS_KEY).then(
      (value) => (enabled = value ? `,${value},` : ""),
      (err: Error) => log.debug({ err: err.message }, "webhook events not read"),
    );
  void refresh();
  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  let toldCluster = false;
  const membership = () => {
    if (!MEMBERSHIP.some((kind) => enabled.includes(`,${kind},`))) return false;
    if (!isRedisCluster(redis)) return true;
    if (!toldCluster) log.warn("webhooks: room.occupied, room.vacated, member.joined and member.left are not available on a Redis Cluster; not added");
    toldCluster = true;
    return false;
  };
  const failed = (err: Error) => log.warn({ err: err.message }, "webhook event not added");

  function run(script: string, room: string, user: User, whole: boolean) {
    // Called in order on one connection, so a user's join and leave reach Redis in that order.
    redis
      .eval(
        script,
        3,
        webhookPresenceKey(room),
        webhookMembersKey(room),
        WEBHOOK_STREAM,
        enabled,
        WEBHOOK_STREAM_MAXLEN,
        Date.now(),
        `${instanceId}|${user.id}`,
        user.id,
        room,
        JSON.stringify({ id: user.id, name: user.name }),
        whole ? "1" : "0",
        CHAT_PRESENCE_KEYS.instance(""),
      )
      .catch(failed);
  }

  return {
    wrap(presence) {
      // Presence is a class: its other methods stay bound to it, and only add and remove are wrapped.
      return new Proxy(presence, {
        get(target, property) {
          if (property === "add") {
            return async (room: string, user: User) => {
              const first = await target.add(room, user);
              if (first && membership()) run(JOIN_SCRIPT, room, user, false);
              return first;
            };
          }
          if (property === "remove") {
            return async (room: string, user: User) => {
              const last = await target.remove(room, user);
              if (last && membership()) run(LEAVE_SCRIPT, room, user, false);
              return last;
            };
          }
          const value = Reflect.get(target, property, target) as unknown;
          return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
    expired(room, user) {
      if (membership()) run(LEAVE_SCRIPT, room, user, true);
    },
    afterMessage(handler) {
      return async (socket, payload) => {
        const ack = await handler(socket, payload);
        if (!ack.ok || "duplicate" in ack || !enabled.includes(",message.created,")) return ack;
        const { room } = payload as { room: string };
        const text = storedText.parse((payload as { text: string }).text);
        const { id, ts } = ack as unknown as { id: string; ts: number };
        const { id: userId, name } = socket.data.user;
        const data = JSON.stringify({ id, ts, user: { id: userId, name }, text });
        redis
          .xadd(WEBHOOK_STREAM, "MAXLEN", "~", WEBHOOK_STREAM_MAXLEN, "*", "type", "message.created", "room", room, "data", data, "ts", Date.now())
          .catch(failed);
        return ack;
      };
    },
    stop: () => clearInterval(timer),
  };
}
