import type { RedisClient } from "@chat/shared";
import { CHAT_PREFIX, TYPING_INTERVAL_MS, fail, ok, typingKey, typingRequest, validate, type TypingEvent } from "@chat/shared";
import type { Handler } from "./events.js";

/**
 * `typing {room}`: the others in the room get `typing {room, user}`, at most once per
 * `TYPING_INTERVAL_MS` per user and room (across pods with Redis); the rest is dropped without an
 * error, since a client simply sends it again while the user types. Nothing is stored, and it goes
 * out volatile: a slow reader is better off without stale "is typing" than with a queue of them.
 */
export function typingHandlers(redis: RedisClient | undefined, prefix = CHAT_PREFIX): { typing: Handler } {
  // Without Redis, one pod: the last pass per user and room, pruned as it grows.
  const passed = new Map<string, number>();
  async function mayPass(user: string, room: string): Promise<boolean> {
    if (redis) return (await redis.set(typingKey(prefix, room, user), "1", "PX", TYPING_INTERVAL_MS, "NX")) === "OK";
    const key = `${room}\u0000${user}`;
    const now = Date.now();
    if ((passed.get(key) ?? 0) > now - TYPING_INTERVAL_MS) return false;
    if (passed.size > 10_000) for (const [k, at] of passed) if (at <= now - TYPING_INTERVAL_MS) passed.delete(k);
    passed.set(key, now);
    return true;
  }
  return {
    async typing(socket, payload) {
      const request = validate(typingRequest, payload);
      if (!request.ok) return request;
      const { room } = request.data;
      if (room === socket.id || !socket.rooms.has(room)) return fail("not_in_room", `join ${room} before typing in it`);
      const user = socket.data.user;
      let pass: boolean;
      try {
        pass = await mayPass(user.id, room);
      } catch {
        pass = false; // a typing indicator is not worth an error
      }
      if (pass) socket.volatile.to(room).emit("typing", { room, user } satisfies TypingEvent);
      return ok({});
    },
  };
}
