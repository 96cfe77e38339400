import { randomUUID } from "node:crypto";
import { fail, messageRequest, ok, validate, type ChatMessage } from "@chat/shared";
import type { ChatContext } from "./context.js";
import type { Handler } from "./events.js";
import { userOf } from "./identity.js";

export function messageHandlers(ctx: ChatContext): { message: Handler } {
  // Built once: the schema depends on configuration only.
  const schema = messageRequest(ctx.config.MAX_TEXT_LENGTH);

  return {
    message(socket, payload) {
      const request = validate(schema, payload);
      if (!request.ok) return request;
      const { room, text } = request.data;
      if (!socket.rooms.has(room)) return fail("not_in_room", `join ${room} before sending to it`);
      if (!ctx.busReady()) return fail("unavailable", "the message bus is unreachable; the message was not sent");
      const message: ChatMessage = { id: randomUUID(), room, text, user: userOf(socket), ts: Date.now() };
      ctx.io.to(room).emit("message", message);
      return ok({ id: message.id, ts: message.ts });
    },
  };
}
