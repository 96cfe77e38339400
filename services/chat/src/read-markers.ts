import { UNREAD_CAP, fail, ok, readRequest, roomsRequest, userRoom, validate, type ReadEvent, type RoomLog, type RoomSummary } from "@chat/shared";
import { isDmRoom, type DmDirectory } from "./dms.js";
import type { Handler } from "./events.js";
import { joinedRooms } from "./rooms.js";

/** What `read` and `rooms` use: the log's read markers, and who is in each direct-message room. */
export interface ReadDeps {
  history: Pick<RoomLog, "markRead" | "readState">;
  dms: Pick<DmDirectory, "users">;
}

const unavailable = () => fail("unavailable", "Redis is unreachable; try again shortly");

/**
 * `read {room, id}` moves the user's read marker (kept per user and room, in the slot of the
 * room's log) and tells the user's other connections, so that a phone and a laptop agree. `rooms
 * {}` lists this connection's rooms with their unread counts and last message: a sidebar.
 */
export function readHandlers(deps: ReadDeps): { read: Handler; rooms: Handler } {
  return {
    async read(socket, payload) {
      const request = validate(readRequest, payload);
      if (!request.ok) return request;
      const { room, id } = request.data;
      if (room === socket.id || !socket.rooms.has(room)) return fail("not_in_room", `join ${room} before marking it read`);
      const user = socket.data.user;
      let marker: string;
      try {
        marker = await deps.history.markRead(room, user.id, id);
      } catch {
        return unavailable();
      }
      socket.to(userRoom(user.id)).emit("read", { room, id: marker } satisfies ReadEvent);
      return ok({ room, id: marker });
    },

    async rooms(socket, payload) {
      const request = validate(roomsRequest, payload);
      if (!request.ok) return request;
      const user = socket.data.user;
      try {
        const rooms = await Promise.all(
          joinedRooms(socket).map(async (room): Promise<RoomSummary> => {
            const [state, pair] = await Promise.all([deps.history.readState(room, user.id, UNREAD_CAP), isDmRoom(room) ? deps.dms.users(room) : undefined]);
            const other = pair?.find((id) => id !== user.id) ?? (pair ? user.id : undefined);
            return { room, ...(other !== undefined && { dm: other }), ...state };
          }),
        );
        return ok({ rooms });
      } catch {
        return unavailable();
      }
    },
  };
}
