import type { IncomingMessage } from "node:http";
import type { Express, Response } from "express";
import type { RedisClient } from "@chat/shared";
import { roomName, type RateLimit } from "@chat/shared";
import { mayJoin, type Authenticator } from "./auth.js";
import type { ChatConfig } from "./config.js";
import { HandshakeError } from "./handshake-error.js";
import type { Presence } from "./presence.js";
import { isRevoked } from "./sessions.js";

export interface MembersApiOptions {
  /** In jwt mode a token is required; in open mode anyone may ask. */
  authMode: ChatConfig["AUTH_MODE"];
  presence: Pick<Presence, "members">;
  /** Where revoked tokens are listed; without Redis nothing is revoked. */
  redis?: RedisClient;
  authenticate: Authenticator;
  clientAddress(req: IncomingMessage): string;
  /** Requests per user (jwt) or per address (open). Undefined: off. */
  limit?: RateLimit;
  /** Failed authentications per address, the handshake's bucket. Undefined: off. */
  failures?: RateLimit;
}

function sendError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/**
 * `GET /v1/rooms/:room/members` on the chat port. In jwt mode it needs `Authorization: Bearer
 * <token>` with a token that may join the room (issue 24 #2: it listed the members of any room to
 * anyone); it is throttled per user (per address in open mode), since each call reads Redis.
 */
export function membersApi(app: Express, options: MembersApiOptions): void {
  const jwt = options.authMode === "jwt";
  app.get("/v1/rooms/:room/members", async (req, res) => {
    const address = options.clientAddress(req);
    let key = address;
    let session;
    if (jwt) {
      if (!req.headers.authorization) {
        res.setHeader("WWW-Authenticate", 'Bearer realm="chat"');
        sendError(res, 401, "unauthorized", "a token is required: send Authorization: Bearer <token>, one that may join the room");
        return;
      }
      try {
        session = await options.authenticate({ auth: undefined, headers: { authorization: req.headers.authorization } });
        if (await isRevoked(options.redis, session.jti)) throw new HandshakeError("unauthorized", "the token has been revoked");
      } catch (err) {
        if (!(err instanceof HandshakeError)) return sendError(res, 503, "unavailable", "the token cannot be checked right now; retry shortly");
        const limited = await options.failures?.consume(address);
        if (limited && !limited.ok) return tooMany(res, limited.retryAfterMs, "failed requests from this address");
        res.setHeader("WWW-Authenticate", 'Bearer realm="chat", error="invalid_token"');
        return sendError(res, 401, "unauthorized", err.message);
      }
      key = `u:${session.user.id}`;
    }
    const room = roomName.safeParse(req.params.room);
    if (!room.success) return sendError(res, 400, "bad_request", "room: must be 1-64 characters of A-Z a-z 0-9 _ . : -");
    if (session && !mayJoin(session, room.data)) return sendError(res, 403, "forbidden", `your token does not allow room ${room.data}`);
    const limited = await options.limit?.consume(key);
    if (limited && !limited.ok) return tooMany(res, limited.retryAfterMs, "member list requests");
    try {
      res.json({ room: room.data, members: await options.presence.members(room.data) });
    } catch {
      sendError(res, 503, "unavailable", "Redis is unreachable");
    }
  });
}

function tooMany(res: Response, retryAfterMs: number, what: string): void {
  res.setHeader("Retry-After", String(Math.ceil(retryAfterMs / 1000)));
  res.status(429).json({ error: { code: "rate_limited", message: `too many ${what}; retry in ${retryAfterMs} ms`, retryAfterMs } });
}
