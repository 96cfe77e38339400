import { fail, messageRequest, ok, rateLimited, storedBodyBytes, validate, type ProtocolError, type QuotaScope } from "@chat/shared";
import type { ChatContext } from "./context.js";
import type { Handler } from "./events.js";
import { userOf } from "./identity.js";

const unavailable = () =>
  fail("unavailable", "the message could not be stored; it was not sent. Retry with the same clientMsgId");

const QUOTA_OWNER: Record<QuotaScope, string> = {
  user: "you have",
  room: "this room has",
  total: "this chat has",
};

/** A storage quota's refusal: which quota, how much it allows, and when a retry can pass. */
function overQuota(scope: QuotaScope, limitBytes: number, windowSeconds: number, retryAfterMs: number): { ok: false; error: ProtocolError } {
  const message = `${QUOTA_OWNER[scope]} stored the most allowed (${limitBytes} bytes per ${windowSeconds} s); retry in ${retryAfterMs} ms`;
  return { ok: false, error: { code: "rate_limited", message, retryAfterMs } };
}

export function messageHandlers(ctx: ChatContext): { message: Handler } {
  // Built once: the schema depends on configuration only.
  const schema = messageRequest(ctx.config.MAX_TEXT_LENGTH);
  const ttlSeconds = ctx.config.CLIENT_MSG_ID_TTL_SECONDS;

  return {
    /**
     * Appends the message to the room's log, which publishes it to every pod in the same step;
     * only then is it acked. A retry with the same `clientMsgId` gets the original id back.
     */
    async message(socket, payload) {
      const request = validate(schema, payload);
      if (!request.ok) return request;
      const { room, text, clientMsgId } = request.data;
      if (!socket.rooms.has(room)) return fail("not_in_room", `join ${room} before sending to it`);
      if (!ctx.busReady()) return unavailable();
      const user = userOf(socket);
      const body = { room, text, user };
      // Charged before the append, given back when nothing was stored (a refusal, a retry, an error).
      const quota = ctx.limits.storage;
      const bytes = quota ? storedBodyBytes(body) : 0;
      if (quota) {
        const charged = await quota.consume(user.id, room, bytes);
        if (!charged.ok) {
          ctx.metrics?.rateLimited.inc({ kind: `storage_${charged.scope}` });
          return overQuota(charged.scope, charged.limitBytes, ctx.config.QUOTA_WINDOW_SECONDS, charged.retryAfterMs);
        }
      }
      const refund = () => quota?.refund(user.id, room, bytes);
      try {
        const dedupe = clientMsgId ? { scope: `u:${user.id}:${clientMsgId}`, ttlSeconds } : undefined;
        // Per user, across every pod and connection: a second tab or pod does not double the rate.
        // The limit is counted in the same round trip as the append (room-log.ts).
        const limiter = ctx.limits.messages;
        const result = limiter
          ? await ctx.history.appendLimited(room, "message", body, { limiter, key: user.id }, { dedupe })
          : await ctx.history.append(room, "message", body, { dedupe });
        if ("refused" in result) {
          refund();
          ctx.metrics?.rateLimited.inc({ kind: "message" });
          return rateLimited("messages", result.retryAfterMs);
        }
        const { id, ts, duplicate } = result;
        if (duplicate) refund();
        return ok(duplicate ? { id, ts, duplicate } : { id, ts });
      } catch (err) {
        refund();
        ctx.log.warn({ sid: socket.id, err: (err as Error).message }, "message not stored");
        return unavailable();
      }
    },
  };
}
