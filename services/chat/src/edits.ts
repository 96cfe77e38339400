import { deleteRequest, editRequest, fail, ok, rateLimited, storedBodyBytes, validate, type Amendment, type Logger, type RoomLog } from "@chat/shared";
import { isModerator } from "./auth.js";
import type { Handler } from "./events.js";
import { overQuota, type MessageDeps } from "./messages.js";
import type { ChatSocket } from "./socket-types.js";

/** What `edit` and `delete` use: the message handler's limits and quotas, and the log's `amend`. */
export interface EditDeps extends Pick<MessageDeps, "limits" | "metrics" | "busReady"> {
  /** Every room's log: an edit or a delete is one more entry of it. */
  history: Pick<RoomLog, "amend">;
  config: Pick<MessageDeps["config"], "MAX_TEXT_LENGTH" | "QUOTA_WINDOW_SECONDS">;
  log: Logger;
}

/**
 * `edit {room, id, text}` and `delete {room, id}`: each is one more entry of the room's log
 * (`message_edited`, `message_deleted`), delivered live and replayed by catch-ups. The author may
 * edit and delete their messages; a token with `roles: ["moderator"]` may delete anyone's. The log
 * checks the author in the same script that appends (room-log-amend.ts), so no race lets another
 * user's message through.
 */
export function editHandlers(deps: EditDeps): { edit: Handler; delete: Handler } {
  const editSchema = editRequest(deps.config.MAX_TEXT_LENGTH);

  async function amend(socket: ChatSocket, room: string, amendment: Amendment, bytes: number) {
    if (room === socket.id || !socket.rooms.has(room)) return fail("not_in_room", `join ${room} before changing its messages`);
    if (!deps.busReady()) return fail("unavailable", "the change could not be stored; try again shortly");
    const user = socket.data.user;
    // Edits and deletes are messages too, for the rate limit and the storage quota.
    const limited = await deps.limits.messages?.consume(user.id);
    if (limited && !limited.ok) {
      deps.metrics.rateLimited.inc({ kind: "message" });
      return rateLimited("messages", limited.retryAfterMs);
    }
    const quota = bytes > 0 ? deps.limits.storage : undefined;
    const spent = quota?.check(user.id, room);
    if (spent && !spent.ok) {
      deps.metrics.rateLimited.inc({ kind: `storage_${spent.scope}` });
      return overQuota(spent.scope, spent.limitBytes, deps.config.QUOTA_WINDOW_SECONDS, spent.retryAfterMs);
    }
    let result;
    try {
      result = await deps.history.amend(room, amendment);
    } catch (err) {
      deps.log.warn({ sid: socket.id, err: (err as Error).message }, "amendment not stored");
      return fail("unavailable", "the change could not be stored; try again shortly");
    }
    if ("refused" in result) {
      if (result.refused === "not_found") return fail("not_found", `message ${amendment.id} is not in ${room}'s log (deleted, trimmed, or not a message)`);
      return fail("forbidden", amendment.kind === "edit" ? "you can only edit your own messages" : "only its author or a moderator can delete a message");
    }
    if (quota) await quota.charge(user.id, room, bytes);
    return ok({ logId: result.id, ts: result.ts });
  }

  return {
    async edit(socket, payload) {
      const request = validate(editSchema, payload);
      if (!request.ok) return request;
      const { room, id, text } = request.data;
      return amend(socket, room, { kind: "edit", id, text, by: socket.data.user.id }, storedBodyBytes({ room, id, text, editedAt: Date.now() }));
    },

    async delete(socket, payload) {
      const request = validate(deleteRequest, payload);
      if (!request.ok) return request;
      const { room, id } = request.data;
      const moderator = isModerator(socket.data.session);
      return amend(socket, room, moderator ? { kind: "delete", id } : { kind: "delete", id, by: socket.data.user.id }, 0);
    },
  };
}
