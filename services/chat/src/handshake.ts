import type { IncomingMessage } from "node:http";
import type { ExtendedError, Socket } from "socket.io";
import type { RateLimit } from "@chat/shared";
import type { Authenticator, Session } from "./auth.js";
import type { ChatContext } from "./context.js";
import { HandshakeError } from "./identity.js";
import { clientAddress, isRevoked } from "./sessions.js";

export interface HandshakeOptions {
  authenticate: Authenticator;
  /** New connections per client address. */
  connectionLimit?: RateLimit;
  /** True while the pod drains: new connections go elsewhere. */
  draining(): boolean;
}

/** How soon a client refused by a draining pod should try again (another pod will answer). */
const DRAINING_RETRY_MS = 1000;

/**
 * Everything a connection must pass, cheapest first: the pod is not draining, the address is
 * under its rate, the token is valid and not revoked, and the user is under their connection cap.
 * Every refusal is a `connect_error` with `data.code` (and `data.retryAfterMs` when waiting helps).
 */
export function handshake(ctx: ChatContext, options: HandshakeOptions) {
  const { config, presence } = ctx;
  // One listener for every connection (`this` is the socket), not a closure per connection.
  function uncount(this: Socket) {
    void presence.disconnect((this.data.session as Session).user.id).catch(() => undefined);
  }
  return async (socket: Socket, next: (err?: ExtendedError) => void): Promise<void> => {
    let counted: string | undefined;
    try {
      const { origin, host } = socket.handshake.headers;
      if (!originAllowed(config.CORS_ORIGINS, origin, host)) {
        throw new HandshakeError("forbidden", `this page's origin (${String(origin).slice(0, 200)}) may not connect: only the chat's own origin and those in its CORS_ORIGINS may`);
      }
      if (options.draining()) throw new HandshakeError("unavailable", "this pod is shutting down: connect again (to another pod)", DRAINING_RETRY_MS);
      if (options.connectionLimit) {
        const result = await options.connectionLimit.consume(clientAddress(socket, config.TRUST_PROXY));
        if (!result.ok) {
          ctx.metrics?.rateLimited.inc({ kind: "connection" });
          throw new HandshakeError("rate_limited", `too many new connections from this address; retry in ${result.retryAfterMs} ms`, result.retryAfterMs);
        }
      }
      const session = await options.authenticate(socket.handshake);
      if (await isRevoked(ctx.redis?.pub, session.jti)) throw new HandshakeError("unauthorized", "the token has been revoked");
      if (config.MAX_CONNECTIONS_PER_USER > 0) {
        counted = session.user.id;
        const connections = await presence.connect(session.user.id);
        if (connections > config.MAX_CONNECTIONS_PER_USER) {
          throw new HandshakeError("limit_exceeded", `at most ${config.MAX_CONNECTIONS_PER_USER} connections per user; close one first`);
        }
      }
      socket.data.session = session;
      socket.data.user = session.user;
      if (counted) socket.on("disconnect", uncount);
      next();
    } catch (err) {
      if (counted) await presence.disconnect(counted).catch(() => undefined);
      if (err instanceof HandshakeError) return next(err);
      ctx.log.warn({ err: (err as Error).message }, "handshake failed");
      next(new HandshakeError("unavailable", "the server cannot check this connection right now; retry shortly"));
    }
  };
}

/**
 * Browsers send an Origin with every WebSocket and request; CORS does not protect WebSockets, so
 * it is checked here: the page's own origin, the configured ones, or no Origin at all (not a
 * browser). Never `*`.
 */
export function originAllowed(allowed: string[] | undefined, origin: string | undefined, host: string | undefined): boolean {
  if (!origin || allowed?.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false; // a malformed Origin is refused
  }
}

/**
 * The Engine.IO-level check. A long-polling request from another origin is refused here (403):
 * the browser would not let the page read any answer anyway. A WebSocket passes, to be refused by
 * the handshake middleware with a `connect_error` that says why (a 403 on the upgrade reaches the
 * page as a bare "websocket error"); it never reaches any handler.
 */
export function originCheck(allowed: string[] | undefined) {
  return (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
    const websocket = req.headers.upgrade?.toLowerCase() === "websocket";
    if (websocket || originAllowed(allowed, req.headers.origin, req.headers.host)) return callback(null, true);
    callback("origin not allowed", false);
  };
}
