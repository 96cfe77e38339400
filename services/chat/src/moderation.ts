import type { ChatServerIo as Server, ChatSocket as Socket } from "./socket-types.js";
import type { RedisClient } from "@chat/shared";
import {
  MODERATION_CHANNEL,
  SESSION_ENDED_EVENT,
  bansKey,
  fail,
  liveRule,
  moderationCommand,
  mutesKey,
  userRoom,
  type Ack,
  type Logger,
  type ModerationCommand,
  type ModerationRule,
  type SessionEnded,
} from "@chat/shared";
import type { Handler } from "./events.js";

/** What a kicked (or banned) connection is told, once it has left the room. */
export const KICKED_EVENT = "kicked";
export interface Kicked {
  room: string;
  reason?: string;
}

export interface ModerationOptions {
  io: Server;
  /** The pod's command connection; a subscriber of its own is made from it. */
  redis: RedisClient;
  log: Logger;
  /** Removes `socket`'s presence in `room` and tells the others when the user is gone (it has left the room already). */
  leave: (socket: Socket, room: string) => Promise<void>;
  /**
   * How long a room's bans and mutes are trusted without hearing of a change, should a change
   * be missed (the pod's subscriber reconnecting, say).
   * @default 30000
   */
  cacheMs?: number;
  /**
   * Rooms whose rules are cached at most; the oldest is forgotten beyond it.
   * @default 10000
   */
  maxRooms?: number;
}

export interface Moderation {
  /** `join` refused to a banned user (checked again once joined, should the ban land meanwhile). */
  guardJoin: (handler: Handler) => Handler;
  /** `message` refused to a muted user. */
  guardMessage: (handler: Handler) => Handler;
  close(): Promise<void>;
}

interface RoomRules {
  bans: Record<string, string>;
  mutes: Record<string, string>;
  at: number;
}

const roomOf = (payload: unknown): string | undefined => {
  const room = (payload as { room?: unknown } | null | undefined)?.room;
  return typeof room === "string" ? room : undefined;
};

const until = (rule: ModerationRule) => (rule.until === undefined ? "" : ` until ${new Date(rule.until).toISOString()}`);
const because = (rule: ModerationRule) => (rule.reason ? ` (${rule.reason})` : "");
const banned = (room: string, rule: ModerationRule) => fail("forbidden", `you are banned from ${room}${until(rule)}${because(rule)}`);
const muted = (room: string, rule: ModerationRule) => fail("forbidden", `you are muted in ${room}${until(rule)}${because(rule)}; you can read but not send`);
const unknown = () => fail("unavailable", "this room's moderation rules cannot be read (Redis is unreachable); try again shortly");

/** The local sockets of a user (each is in its user's room from its first moment). */
function localSockets(io: Server, userId: string): Socket[] {
  const nsp = io.of("/");
  const sids = nsp.adapter.rooms.get(userRoom(userId));
  return sids ? [...sids].map((sid) => nsp.sockets.get(sid)).filter((socket): socket is Socket => socket !== undefined) : [];
}

/**
 * The chat pods' half of moderation (docs/server-api.md). The notifier stores bans and mutes in
 * Redis and publishes a command on `MODERATION_CHANNEL`; every pod acts on its own sockets. Bans
 * and mutes are read through a per-room cache that a `rules` command empties, so that `message`,
 * the hot path, costs no Redis round trip for them in the usual case.
 */
export function createModeration({ io, redis, log, leave, cacheMs = 30_000, maxRooms = 10_000 }: ModerationOptions): Moderation {
  const cache = new Map<string, Promise<RoomRules>>();
  const listener = redis.duplicate();
  // A subscriber that lost Redis may have missed commands: whatever was cached is forgotten.
  listener.on("ready", () => cache.clear());
  listener.on("error", (err: Error) => log.debug({ err: err.message }, "moderation subscriber error"));
  listener.subscribe(MODERATION_CHANNEL).catch((err: Error) => log.warn({ err: err.message }, "moderation: cannot subscribe; retried on reconnect"));
  listener.on("message", (channel: string, raw: string) => {
    if (channel !== MODERATION_CHANNEL) return;
    let command: ModerationCommand;
    try {
      const parsed = moderationCommand.safeParse(JSON.parse(raw));
      if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? "invalid");
      command = parsed.data;
    } catch (err) {
      log.debug({ err: (err as Error).message }, "moderation: malformed command dropped");
      return;
    }
    act(command).catch((err: Error) => log.warn({ err: err.message, op: command.op }, "moderation command failed"));
  });

  async function act(command: ModerationCommand): Promise<void> {
    if (command.op === "rules") {
      cache.delete(command.room);
      return;
    }
    if (command.op === "disconnect") {
      const ended: SessionEnded = { reason: "disconnected", reconnect: true, ...(command.reason && { message: command.reason }) };
      for (const socket of localSockets(io, command.userId)) {
        socket.emit(SESSION_ENDED_EVENT, ended);
        socket.disconnect(true);
      }
      return;
    }
    const { room, userId, reason } = command;
    // A ban is stored before its kick is published: the rules read from now on include it.
    cache.delete(room);
    await Promise.all(localSockets(io, userId).map((socket) => kick(socket, room, reason)));
  }

  async function kick(socket: Socket, room: string, reason?: string): Promise<void> {
    if (!socket.rooms.has(room)) return;
    await socket.leave(room);
    socket.emit(KICKED_EVENT, { room, ...(reason && { reason }) } satisfies Kicked);
    await leave(socket, room);
  }

  function rulesOf(room: string): Promise<RoomRules> {
    const cached = cache.get(room);
    if (cached) return cached;
    const loading = redis
      .multi()
      .hgetall(bansKey(room))
      .hgetall(mutesKey(room))
      .exec()
      .then((replies) => {
        const [bans, mutes] = (replies ?? []).map(([err, value]) => {
          if (err) throw err;
          return value as Record<string, string>;
        });
        return { bans: bans ?? {}, mutes: mutes ?? {}, at: Date.now() };
      });
    // A failed read is not kept: the next request tries again.
    loading.catch(() => cache.get(room) === loading && cache.delete(room));
    if (cache.size >= maxRooms) cache.delete(cache.keys().next().value!);
    cache.set(room, loading);
    return loading;
  }

  async function rule(room: string, kind: "bans" | "mutes", userId: string): Promise<ModerationRule | undefined> {
    let rules = await rulesOf(room);
    if (Date.now() - rules.at > cacheMs) {
      cache.delete(room);
      rules = await rulesOf(room);
    }
    return liveRule(rules[kind][userId]);
  }

  return {
    guardJoin(handler) {
      return async (socket, payload) => {
        const room = roomOf(payload);
        if (room === undefined) return handler(socket, payload);
        const { id } = socket.data.user;
        try {
          const ban = await rule(room, "bans", id);
          if (ban) return banned(room, ban);
        } catch {
          return unknown();
        }
        const ack: Ack = await handler(socket, payload);
        if (!ack.ok) return ack;
        // A ban published while this join was under way kicked nobody: this connection was not in
        // the room yet. Its `rules` command emptied the cache, so this reads the ban.
        const late = await rule(room, "bans", id).catch(() => undefined);
        if (!late) return ack;
        if (socket.rooms.has(room)) {
          await socket.leave(room);
          await leave(socket, room);
        }
        return banned(room, late);
      };
    },

    guardMessage(handler) {
      return async (socket, payload) => {
        const room = roomOf(payload);
        if (room === undefined || !socket.rooms.has(room)) return handler(socket, payload);
        try {
          const mute = await rule(room, "mutes", socket.data.user.id);
          if (mute) return muted(room, mute);
        } catch {
          return unknown();
        }
        return handler(socket, payload);
      };
    },

    async close() {
      cache.clear();
      await listener.quit().catch(() => listener.disconnect());
    },
  };
}
