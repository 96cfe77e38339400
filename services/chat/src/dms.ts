import type { RedisClient } from "@chat/shared";
import { CHAT_PREFIX, DM_PREFIX, dmKey, dmRequest, dmRoom, fail, ok, userRoom, validate, type DmEvent } from "@chat/shared";
import type { Handler } from "./events.js";
import type { ChatServerIo } from "./socket-types.js";

/**
 * Who may join each direct-message room: its two users, whatever their token's `rooms` claim
 * says, and nobody else. Recorded by `dm`; in Redis, so that every pod agrees.
 */
export interface DmDirectory {
  record(room: string, a: string, b: string): Promise<void>;
  /** The two user ids of a direct-message room, or undefined when `dm` never made it. */
  users(room: string): Promise<[string, string] | undefined>;
}

/**
 * A directory entry lives as long as the room's log (`ttlSeconds`, 0: for good) after the last
 * `dm`, which renews it; after that a `dm` makes it again.
 */
export function createDmDirectory(redis: RedisClient | undefined, ttlSeconds: number, prefix = CHAT_PREFIX): DmDirectory {
  const key = (room: string) => dmKey(prefix, room);
  const memory = new Map<string, [string, string]>();
  return {
    async record(room, a, b) {
      if (!redis) return void memory.set(room, [a, b]);
      const value = JSON.stringify([a, b]);
      await (ttlSeconds > 0 ? redis.set(key(room), value, "EX", ttlSeconds) : redis.set(key(room), value));
    },
    async users(room) {
      if (!redis) return memory.get(room);
      const value = await redis.get(key(room));
      return value ? (JSON.parse(value) as [string, string]) : undefined;
    },
  };
}

/** Why `user` may not join the direct-message room `room`, or undefined when they may. */
export async function dmRefusal(directory: Pick<DmDirectory, "users">, room: string, user: string): Promise<string | undefined> {
  const users = await directory.users(room);
  if (!users) return `${room} is not a direct conversation yet: start it with dm {user}`;
  return users.includes(user) ? undefined : `${room} is a direct conversation between two other users`;
}

/** Room names starting with `dm:` are direct-message rooms, whoever asks. */
export function isDmRoom(room: string): boolean {
  return room.startsWith(DM_PREFIX);
}

/**
 * `dm {user}`: records the room of the two users, joins the asker to it (through `join`, so that
 * presence, caps and limits apply as to any room) and tells the other user on all their
 * connections, on every pod.
 */
export function dmHandlers(deps: { io: ChatServerIo; directory: Pick<DmDirectory, "record">; join: Handler }): { dm: Handler } {
  return {
    async dm(socket, payload) {
      const request = validate(dmRequest, payload);
      if (!request.ok) return request;
      const me = socket.data.user;
      const other = request.data.user;
      if (other === me.id) return fail("bad_request", "user: that is you; a direct conversation needs another user");
      const room = dmRoom(me.id, other);
      try {
        await deps.directory.record(room, me.id, other);
      } catch {
        return fail("unavailable", "Redis is unreachable; try again shortly");
      }
      const joined = await deps.join(socket, { room });
      if (!joined.ok) return joined;
      deps.io.to(userRoom(other)).emit("dm", { room, user: me } satisfies DmEvent);
      return ok({ room });
    },
  };
}
