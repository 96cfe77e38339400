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
  type Ack,
  type Logger,
  type PresenceEvent,
  type RateLimit,
  type ReadResult,
  type RoomLog,
} from "@chat/shared";
import { mayJoin } from "./auth.js";
import type { ChatConfig } from "./config.js";
import { dmRefusal, isDmRoom, type DmDirectory } from "./dms.js";
import type { Handler } from "./events.js";
import { reservedRoom } from "./identity.js";
import type { ChatMetrics } from "./metrics.js";
import type { Presence } from "./presence.js";
import type { ChatSocket } from "./socket-types.js";

/** What leaving a room needs: presence, to tell whether the user is gone, and a log for failures. */
export interface LeaveDeps {
  presence: Pick<Presence, "remove" | "view">;
  log: Logger;
}

/** What the room handlers use. */
export interface RoomDeps extends LeaveDeps {
  presence: Pick<Presence, "add" | "remove" | "view">;
  /** Every room's log, read on join (the catch-up, the user's read state) and by `history`. */
  history: Pick<RoomLog, "read" | "readState">;
  /** Who may join each direct-message room (dms.ts). */
  dms: Pick<DmDirectory, "users">;
  /** Joins per connection, and joins plus `history` requests per user across pods; undefined: off. */
  limits: { joins?: RateLimit; userReads?: RateLimit };
  metrics: Pick<ChatMetrics, "rateLimited" | "catchUps" | "replayed">;
  config: Pick<ChatConfig, "MAX_ROOMS_PER_CONNECTION" | "CATCH_UP_MAX_ENTRIES" | "CATCH_UP_MAX_BYTES" | "HISTORY_ON_JOIN">;
  /** True when a message sent now would reach every pod. Always true on a single node. */
  busReady(): boolean;
}

const unavailable = () => fail("unavailable", "the message bus is unreachable; try again shortly");
const closed = () => fail("unavailable", "the connection closed while joining");

/** Rooms a client joined itself (not its own socket room nor its per-user room). */
export function joinedRooms(socket: ChatSocket): string[] {
  return [...socket.rooms].filter((room) => room !== socket.id && !room.startsWith("@"));
}

/** Rooms whose `join` is under way on this connection: they count against the cap already. */
function joiningRooms(socket: ChatSocket): Set<string> {
  return (socket.data.joining ??= new Set());
}

/** The read status fields of an ack: `complete`, `gap`, `more` and, with `more`, `cursor`. */
function status({ complete, gap, more, cursor }: ReadResult) {
  return { complete, gap, more, ...(cursor !== undefined && { cursor }) };
}

/** The per-connection join limit, then the user's budget across pods (a reconnect resets only the first). */
async function spend({ limits, metrics }: RoomDeps, socket: ChatSocket, request: "join" | "history") {
  if (request === "join") {
    const limited = await limits.joins?.consume(socket.id);
    if (limited && !limited.ok) {
      metrics.rateLimited.inc({ kind: "join" });
      return rateLimited("joins", limited.retryAfterMs);
    }
  }
  const budget = await limits.userReads?.consume(socket.data.user.id);
  if (budget && !budget.ok) {
    metrics.rateLimited.inc({ kind: "user_reads" });
    return rateLimited("joins and history requests by this user", budget.retryAfterMs);
  }
  return undefined;
}

/**
 * Puts the socket in the room and records its presence. Resolves whether it is the user's first
 * connection in the room on this pod, or the ack of a join that cannot go on (it undid its part).
 */
async function enter({ presence, log }: RoomDeps, socket: ChatSocket, room: string): Promise<{ first: boolean } | Ack> {
  const user = socket.data.user;
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
  let first;
  try {
    first = await presence.add(room, user);
  } catch (err) {
    log.warn({ sid: socket.id, err: (err as Error).message }, "join failed: presence not recorded");
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
  return { first };
}

/** A join that passed the checks: enters the room (unless `already`), reads the roster and the log, and announces the user. */
async function joinRoom(deps: RoomDeps, socket: ChatSocket, room: string, since: string | undefined, already: boolean): Promise<Ack> {
  const { presence, config, history: roomLog, metrics } = deps;
  const refused = await spend(deps, socket, "join");
  if (refused) return refused;
  if (!deps.busReady()) return unavailable();
  if (socket.disconnected) return closed();
  const user = socket.data.user;
  let first = false;
  if (!already) {
    const entered = await enter(deps, socket, room);
    if (!("first" in entered)) return entered;
    first = entered.first;
  }
  // The socket is in the room before the log is read: a message appended meanwhile is both
  // in what is read and delivered live, and the client drops the duplicate by id.
  const readCaps = { maxBytes: config.CATCH_UP_MAX_BYTES };
  let view, history, readState;
  try {
    [view, history, readState] = await Promise.all([
      presence.view(room),
      since !== undefined
        ? roomLog.read(room, { after: since, limit: config.CATCH_UP_MAX_ENTRIES, ...readCaps })
        : roomLog.read(room, { limit: config.HISTORY_ON_JOIN, ...readCaps }),
      roomLog.readState(room, user.id, UNREAD_CAP),
    ]);
  } catch {
    return unavailable();
  }
  if (since) {
    metrics.catchUps.inc();
    metrics.replayed.inc(history.entries.length);
  }
  // In a big room nobody hears about a join: it would cost every member a frame (room-views.ts).
  if (first && view.announce && (view.roster.get(user.id)?.instances ?? 1) === 1) {
    socket.to(room).emit("presence", { room, user, action: "join" } satisfies PresenceEvent);
  }
  const { lastRead, unread } = readState;
  return ok({
    room,
    members: view.listed(),
    memberCount: view.roster.size,
    messages: history.entries,
    ...status(history),
    ...(lastRead && { lastRead }),
    unread,
  });
}

/**
 * `join`, `leave` and `history`. Presence events are per user, not per connection: the others
 * hear `join` when a user's first connection anywhere enters the room and `leave` when the last one
 * goes, so a second tab or a phone does not make a member appear twice or vanish early.
 */
export function roomHandlers(deps: RoomDeps): { join: Handler; leave: Handler; history: Handler } {
  const { config, history: roomLog } = deps;
  const readCaps = { maxBytes: config.CATCH_UP_MAX_BYTES };
  const join = (socket: ChatSocket, room: string, since: string | undefined, already: boolean) => joinRoom(deps, socket, room, since, already);

  return {
    async join(socket, payload) {
      const request = validate(joinRequest, payload);
      if (!request.ok) return request;
      const { room, since } = request.data;
      const reserved = reservedRoom(room, socket.nsp.sockets);
      if (reserved) return fail("bad_request", `room: ${reserved}`);
      if (isDmRoom(room)) {
        // Only its two users, whatever a token's `rooms` claim says (dms.ts).
        const refusal = await dmRefusal(deps.dms, room, socket.data.user.id).catch(() => "unavailable");
        if (refusal === "unavailable") return unavailable();
        if (refusal) return fail("forbidden", refusal);
      } else if (!mayJoin(socket.data.session, room)) return fail("forbidden", `your token does not allow room ${room}`);
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
        await leaveAndAnnounce(deps, socket, room);
      }
      return ok({ room });
    },

    async history(socket, payload) {
      const request = validate(historyRequest, payload);
      if (!request.ok) return request;
      const { room, before, after, limit = HISTORY_PAGE_DEFAULT } = request.data;
      if (!socket.rooms.has(room)) return fail("not_in_room", `join ${room} before reading its history`);
      const refused = await spend(deps, socket, "history");
      if (refused) return refused;
      try {
        const page = await roomLog.read(room, { after, before, limit, ...readCaps });
        return ok({ room, messages: page.entries, ...status(page) });
      } catch {
        return fail("unavailable", "Redis is unreachable; try again shortly");
      }
    },
  };
}

/**
 * Removes the presence of `socket` in `room` and, when that was the user's last connection in the
 * room anywhere, broadcasts their `leave` to the room. Never throws: a presence failure is logged
 * and the `leave` is still broadcast.
 */
export async function leaveAndAnnounce({ presence, log }: LeaveDeps, socket: ChatSocket, room: string): Promise<void> {
  const user = socket.data.user;
  try {
    if (!(await presence.remove(room, user))) return;
    const view = await presence.view(room);
    // A big room's leaves are not announced, as its joins are not (room-views.ts).
    if (!view.announce || view.roster.has(user.id)) return;
  } catch (err) {
    // The entry expires with this pod's liveness key, or is rewritten correctly on reconnect.
    log.debug({ sid: socket.id, err: (err as Error).message }, "presence removal failed");
  }
  socket.to(room).emit("presence", { room, user, action: "leave" } satisfies PresenceEvent);
}
