import type { Socket } from "socket.io";
import { fail, joinRequest, leaveRequest, ok, rateLimited, validate, type PresenceEvent } from "@chat/shared";
import { mayJoin, type Session } from "./auth.js";
import type { ChatContext } from "./context.js";
import type { Handler } from "./events.js";
import { reservedRoom, userOf } from "./identity.js";
import { usersOf } from "./presence.js";

const unavailable = () => fail("unavailable", "the message bus is unreachable; try again shortly");

/** Rooms a client joined itself (not its own socket room nor its per-user room). */
export function joinedRooms(socket: Socket): string[] {
  return [...socket.rooms].filter((room) => room !== socket.id && !room.startsWith("@"));
}

/**
 * `join` and `leave`. Presence events are per user, not per connection: the others hear `join`
 * when a user's first connection anywhere enters the room and `leave` when the last one goes, so a
 * second tab or a phone does not make a member appear twice or vanish early.
 */
export function roomHandlers(ctx: ChatContext): { join: Handler; leave: Handler } {
  const { presence } = ctx;

  return {
    async join(socket, payload) {
      const request = validate(joinRequest, payload);
      if (!request.ok) return request;
      const { room, since } = request.data;
      const reserved = reservedRoom(socket, room);
      if (reserved) return fail("bad_request", `room: ${reserved}`);
      if (!mayJoin(socket.data.session as Session, room)) return fail("forbidden", `your token does not allow room ${room}`);
      const already = socket.rooms.has(room);
      if (!already && joinedRooms(socket).length >= ctx.config.MAX_ROOMS_PER_CONNECTION) {
        return fail("limit_exceeded", `at most ${ctx.config.MAX_ROOMS_PER_CONNECTION} rooms per connection; leave one first`);
      }
      const limited = await ctx.limits.joins?.consume(socket.id);
      if (limited && !limited.ok) {
        ctx.metrics?.rateLimited.inc({ kind: "join" });
        return rateLimited("joins", limited.retryAfterMs);
      }
      if (!ctx.busReady()) return unavailable();
      const user = userOf(socket);
      let first = false;
      if (!already) {
        // Resolves once this pod listens to the room's channel (sharded mode), so that nothing
        // appended between reading the log below and subscribing can slip through.
        await socket.join(room);
        try {
          first = await presence.add(room, user);
        } catch (err) {
          ctx.log.warn({ sid: socket.id, err: (err as Error).message }, "join failed: presence not recorded");
          socket.leave(room);
          await presence.remove(room, user).catch(() => undefined);
          return unavailable();
        }
      }
      // The socket is in the room before the log is read: a message appended meanwhile is both
      // in what is read and delivered live, and the client drops the duplicate by id.
      let roster, history;
      try {
        [roster, history] = await Promise.all([
          presence.roster(room),
          ctx.history.read(room, { since, limit: ctx.config.HISTORY_ON_JOIN }),
        ]);
      } catch {
        return unavailable();
      }
      if (since) {
        ctx.metrics?.catchUps.inc();
        ctx.metrics?.replayed.inc(history.entries.length);
      }
      if (first && (roster.get(user.id)?.instances ?? 1) === 1) {
        socket.to(room).emit("presence", { room, user, action: "join" } satisfies PresenceEvent);
      }
      return ok({ room, members: usersOf(roster), messages: history.entries, complete: history.complete });
    },

    async leave(socket, payload) {
      const request = validate(leaveRequest, payload);
      if (!request.ok) return request;
      const { room } = request.data;
      if (socket.rooms.has(room)) {
        socket.leave(room);
        await leaveQuietly(ctx, socket, room);
      }
      return ok({ room });
    },
  };
}

/** Removes the presence of `socket` in `room` and tells the others if the user is gone; never throws. */
export async function leaveQuietly(ctx: ChatContext, socket: Socket, room: string): Promise<void> {
  const user = userOf(socket);
  try {
    if (!(await ctx.presence.remove(room, user))) return;
    if ((await ctx.presence.roster(room)).has(user.id)) return;
  } catch (err) {
    // The entry expires with this pod's liveness key, or is rewritten correctly on reconnect.
    ctx.log.debug({ sid: socket.id, err: (err as Error).message }, "presence removal failed");
  }
  socket.to(room).emit("presence", { room, user, action: "leave" } satisfies PresenceEvent);
}
