import { UNREAD_CAP, fail, ok, readRequest, roomsRequest, validate, type ReadEvent, type RoomSummary } from "@chat/shared";
import type { ChatContext } from "./context.js";
import { isDmRoom, type DmDirectory } from "./dms.js";
import type { Handler } from "./events.js";
import { userOf, userRoom } from "./identity.js";
import { joinedRooms } from "./rooms.js";

type Deps = Pick<ChatContext, "history" | "log">;

const unavailable = () => fail("unavailable", "Redis is unreachable; try again shortly");

/**
 * `read {room, id}` moves the user's read marker (kept per user and room, in the slot of the
 * room's log) and tells the user's other connections, so that a phone and a laptop agree. `rooms
 * {}` lists this connection's rooms with their unread counts and last message: a sidebar.
 */
export function readHandlers(deps: Deps, dms: DmDirectory): { read: Handler; rooms: Handler } {
  return {
    async read(socket, payload) {
      const request = validate(readRequest, payload);
      if (!request.ok) return request;
      const { room, id } = request.data;
      if (room === socket.id || !socket.rooms.has(room)) return fail("not_in_room", `join ${room} before marking it read`);
      const user = userOf(socket);
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
      const user = userOf(socket);
      try {
        const rooms = await Promise.all(
          joinedRooms(socket).map(async (room): Promise<RoomSummary> => {
            const [state, pair] = await Promise.all([deps.history.readState(room, user.id, UNREAD_CAP), isDmRoom(room) ? dms.users(room) : undefined]);
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
