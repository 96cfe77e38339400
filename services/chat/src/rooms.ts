import type { Socket } from "socket.io";
import {
  HISTORY_PAGE_DEFAULT,
  UNREAD_CAP,
  fail,
  historyRequest,
  joinRequest,
  leaveRequest,
  ok,
  rateLimited,
  validate,
  type PresenceEvent,
  type ReadResult,
} from "@chat/shared";
import { mayJoin, type SocketData } from "./auth.js";
import type { ChatContext } from "./context.js";
import type { Handler } from "./events.js";
import { reservedRoom, userOf } from "./identity.js";
import { usersOf } from "./presence.js";
import { dmRefusal, isDmRoom } from "./dms.js";

const unavailable = () => fail("unavailable", "the message bus is unreachable; try again shortly");
const closed = () => fail("unavailable", "the connection closed while joining");

/** Rooms a client joined itself (not its own socket room nor its per-user room). */
export function joinedRooms(socket: Socket): string[] {
  return [...socket.rooms].filter((room) => room !== socket.id && !room.startsWith("@"));
}

/** Rooms whose `join` is under way on this connection: they count against the cap already. */
function joiningRooms(socket: Socket): Set<string> {
  return ((socket.data as { joining?: Set<string> }).joining ??= new Set());
}

/** The read status fields of an ack: `complete`, `gap`, `more` and, with `more`, `cursor`. */
function status({ complete, gap, more, cursor }: ReadResult) {
  return { complete, gap, more, ...(cursor !== undefined && { cursor }) };
}

/**
 * `join`, `leave` and `history`. Presence events are per user, not per connection: the others
 * hear `join` when a user's first connection anywhere enters the room and `leave` when the last one
 * goes, so a second tab or a phone does not make a member appear twice or vanish early.
 */
export function roomHandlers(ctx: ChatContext): { join: Handler; leave: Handler; history: Handler } {
  const { presence, config } = ctx;
  const readCaps = { maxBytes: config.CATCH_UP_MAX_BYTES };

  /** The per-connection join limit, then the user's budget across pods (a reconnect resets only the first). */
  async function spend(socket: Socket, counted: "join" | "history") {
    if (counted === "join") {
      const limited = await ctx.limits.joins?.consume(socket.id);
      if (limited && !limited.ok) {
        ctx.metrics?.rateLimited.inc({ kind: "join" });
        return rateLimited("joins", limited.retryAfterMs);
      }
    }
    const budget = await ctx.limits.userReads?.consume(userOf(socket).id);
    if (budget && !budget.ok) {
      ctx.metrics?.rateLimited.inc({ kind: "user_reads" });
      return rateLimited("joins and history requests by this user", budget.retryAfterMs);
    }
    return undefined;
  }

  async function join(socket: Socket, room: string, since: string | undefined, already: boolean) {
    const refused = await spend(socket, "join");
    if (refused) return refused;
    if (!ctx.busReady()) return unavailable();
    if (socket.disconnected) return closed();
    const user = userOf(socket);
    let first = false;
    if (!already) {
      // Resolves once this pod listens to the room's channel (sharded mode), so that nothing
      // appended between reading the log below and subscribing can slip through.
      await socket.join(room);
      // A socket that went meanwhile has left all its rooms already: this one would be a leak.
      if (socket.disconnected) {
        // leave() is synchronous with the in-memory and Redis adapters (it returns undefined);
        // awaiting it keeps an asynchronous adapter's rejection on this handler's error path.
        await socket.leave(room);
        return closed();
      }
      try {
        first = await presence.add(room, user);
      } catch (err) {
        ctx.log.warn({ sid: socket.id, err: (err as Error).message }, "join failed: presence not recorded");
        await socket.leave(room);
        await presence.remove(room, user).catch(() => undefined);
        return unavailable();
      }
      // The disconnect (or a `leave`) ran while presence was written, and removed nothing: undo it
      // here, or the user stays listed for good (a ghost).
      if (socket.disconnected || !socket.rooms.has(room)) {
        await socket.leave(room);
        await presence.remove(room, user).catch(() => undefined);
        return socket.disconnected ? closed() : fail("not_in_room", `left ${room} while joining it`);
      }
    }
    // The socket is in the room before the log is read: a message appended meanwhile is both
    // in what is read and delivered live, and the client drops the duplicate by id.
    let roster, history, unread;
    try {
      [roster, history, unread] = await Promise.all([
        presence.roster(room),
        since !== undefined
          ? ctx.history.read(room, { after: since, limit: config.CATCH_UP_MAX_ENTRIES, ...readCaps })
          : ctx.history.read(room, { limit: config.HISTORY_ON_JOIN, ...readCaps }),
        ctx.history.readState(room, user.id, UNREAD_CAP),
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
    const { lastRead, unread: count } = unread;
    return ok({ room, members: usersOf(roster), messages: history.entries, ...status(history), ...(lastRead && { lastRead }), unread: count });
  }

  return {
    async join(socket, payload) {
      const request = validate(joinRequest, payload);
      if (!request.ok) return request;
      const { room, since } = request.data;
      const reserved = reservedRoom(socket, room);
      if (reserved) return fail("bad_request", `room: ${reserved}`);
      if (isDmRoom(room)) {
        // Only its two users, whatever a token's `rooms` claim says (dms.ts).
        const refusal = await dmRefusal(ctx.dms, room, userOf(socket).id).catch(() => "unavailable");
        if (refusal === "unavailable") return unavailable();
        if (refusal) return fail("forbidden", refusal);
      } else if (!mayJoin((socket.data as SocketData).session, room)) return fail("forbidden", `your token does not allow room ${room}`);
      const joining = joiningRooms(socket);
      const already = socket.rooms.has(room) || joining.has(room);
      // The cap counts the joins under way too, and the slot is taken before the first await:
      // otherwise parallel joins all pass the check before any of them is in a room.
      if (!already && new Set([...joinedRooms(socket), ...joining]).size >= config.MAX_ROOMS_PER_CONNECTION) {
        return fail("limit_exceeded", `at most ${config.MAX_ROOMS_PER_CONNECTION} rooms per connection; leave one first`);
      }
      // A second join of the same room while the first is under way only reads: the first one
      // does the joining.
      if (already) return join(socket, room, since, true);
      joining.add(room);
      try {
        return await join(socket, room, since, false);
      } finally {
        joining.delete(room);
      }
    },

    async leave(socket, payload) {
      const request = validate(leaveRequest, payload);
      if (!request.ok) return request;
      const { room } = request.data;
      if (socket.rooms.has(room)) {
        await socket.leave(room);
        await leaveQuietly(ctx, socket, room);
      }
      return ok({ room });
    },

    async history(socket, payload) {
      const request = validate(historyRequest, payload);
      if (!request.ok) return request;
      const { room, before, after, limit = HISTORY_PAGE_DEFAULT } = request.data;
      if (!socket.rooms.has(room)) return fail("not_in_room", `join ${room} before reading its history`);
      const refused = await spend(socket, "history");
      if (refused) return refused;
      try {
        const page = await ctx.history.read(room, { after, before, limit, ...readCaps });
        return ok({ room, messages: page.entries, ...status(page) });
      } catch {
        return fail("unavailable", "Redis is unreachable; try again shortly");
      }
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
