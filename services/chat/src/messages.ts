import {
  fail,
  messageRequest,
  ok,
  rateLimited,
  storedBodyBytes,
  validate,
  type Logger,
  type ProtocolError,
  type QuotaScope,
  type RateLimit,
  type RoomLog,
  type StorageQuota,
} from "@chat/shared";
import type { ChatConfig } from "./config.js";
import type { Handler } from "./events.js";
import type { ChatMetrics } from "./metrics.js";

const unavailable = () => fail("unavailable", "the message could not be stored; it was not sent. Retry with the same clientMsgId");

const QUOTA_OWNER: Record<QuotaScope, string> = {
  user: "you have",
  room: "this room has",
  total: "this chat has",
};

/** A storage quota's refusal: which quota, how much it allows, and when a retry can pass. */
export function overQuota(scope: QuotaScope, limitBytes: number, windowSeconds: number, retryAfterMs: number): { ok: false; error: ProtocolError } {
  const message = `${QUOTA_OWNER[scope]} stored the most allowed (${limitBytes} bytes per ${windowSeconds} s); retry in ${retryAfterMs} ms`;
  return { ok: false, error: { code: "rate_limited", message, retryAfterMs } };
}

/** What the `message` handler uses. */
export interface MessageDeps {
  /** Every room's log: a message is appended to it, which publishes it, before it is acked. */
  history: Pick<RoomLog, "append" | "appendLimited">;
  /** Messages per user across pods, and the storage quotas; undefined: off. */
  limits: { messages?: RateLimit; storage?: StorageQuota };
  metrics: Pick<ChatMetrics, "rateLimited">;
  config: Pick<ChatConfig, "MAX_TEXT_LENGTH" | "CLIENT_MSG_ID_TTL_SECONDS" | "QUOTA_WINDOW_SECONDS">;
  log: Logger;
  /** True when a message sent now would reach every pod. Always true on a single node. */
  busReady(): boolean;
}

export function messageHandlers(ctx: MessageDeps): { message: Handler } {
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
      // A socket is in its own id's room from the start: that room is not one to talk in.
      if (room === socket.id || !socket.rooms.has(room)) return fail("not_in_room", `join ${room} before sending to it`);
      if (!ctx.busReady()) return unavailable();
      const user = socket.data.user;
      const body = { room, text, user };
      // Checked in memory before the append, charged with it: only what was stored is counted,
      // and a refused message costs no Redis work (storage-quota.ts).
      const quota = ctx.limits.storage;
      const spent = quota?.check(user.id, room);
      if (spent && !spent.ok) {
        ctx.metrics.rateLimited.inc({ kind: `storage_${spent.scope}` });
        return overQuota(spent.scope, spent.limitBytes, ctx.config.QUOTA_WINDOW_SECONDS, spent.retryAfterMs);
      }
      try {
        // Length-prefixed, so user "org" with "team:m1" and user "org:team" with "m1" do not meet.
        const dedupe = clientMsgId ? { scope: `u:${user.id.length}:${user.id}:${clientMsgId}`, ttlSeconds } : undefined;
        // Per user, across every pod and connection: a second tab or pod does not double the rate.
        // The limit is counted in the same round trip as the append (room-log.ts).
        const limiter = ctx.limits.messages;
        // What it stores is charged to the quotas by the same script too, where Redis allows (room-log-append.ts).
        const charge = quota?.prepare(user.id, room, storedBodyBytes(body));
        const result = limiter
          ? await ctx.history.appendLimited(room, "message", body, { limiter, key: user.id }, { dedupe, charge })
          : await ctx.history.append(room, "message", body, { dedupe, charge });
        if ("refused" in result) {
          ctx.metrics.rateLimited.inc({ kind: "message" });
          return rateLimited("messages", result.retryAfterMs);
        }
        const { id, ts, duplicate } = result;
        return ok(duplicate ? { id, ts, duplicate } : { id, ts });
      } catch (err) {
        ctx.log.warn({ sid: socket.id, err: (err as Error).message }, "message not stored");
        return unavailable();
      }
    },
  };
}
