import type { IncomingMessage } from "node:http";
import type { ExtendedError } from "socket.io";
import type { RedisClient } from "@chat/shared";
import type { Logger, RateLimit } from "@chat/shared";
import type { Authenticator } from "./auth.js";
import type { ChatConfig } from "./config.js";
import type { ConnectionCounts } from "./connection-cap.js";
import { HandshakeError } from "./handshake-error.js";
import type { ChatMetrics } from "./metrics.js";
import { isRevoked } from "./sessions.js";
import type { ClientAddress } from "./client-address.js";
import type { ChatSocket } from "./socket-types.js";

export interface HandshakeOptions {
  config: Pick<ChatConfig, "AUTH_MODE" | "CORS_ORIGINS" | "MAX_CONNECTIONS_PER_USER">;
  /** Each user's connections across pods, for `MAX_CONNECTIONS_PER_USER`. */
  connections: ConnectionCounts;
  /** Where revoked tokens are listed; without Redis nothing is revoked. */
  redis?: RedisClient;
  metrics: Pick<ChatMetrics, "rateLimited">;
  log: Logger;
  authenticate: Authenticator;
  /** The client's address, as far as the configured proxies can be trusted. */
  clientAddress: ClientAddress;
  /**
   * Per client address: failed handshakes (jwt mode), or every new connection (open mode, where a
   * name costs nothing). Undefined: off.
   */
  addressLimit?: RateLimit;
  /** New connections per authenticated user (jwt mode). Undefined: off. */
  userLimit?: RateLimit;
  /** True while the pod drains: new connections go elsewhere. */
  draining(): boolean;
}

/** How soon a client refused by a draining pod should try again (another pod will answer). */
const DRAINING_RETRY_MS = 1000;

/**
 * Everything a connection must pass, cheapest first: the pod is not draining, the token is valid
 * and not revoked, the user is under their rate and connection cap. Every refusal is a
 * `connect_error` with `data.code` (and `data.retryAfterMs` when waiting helps).
 *
 * Who pays for a connection (issue 24 #1): in jwt mode a failed authentication is charged to its
 * address, and a successful one to its user, so anonymous handshakes from a shared address (a
 * NAT, or every node address behind `externalTrafficPolicy: Cluster`) never spend a real user's
 * budget. In open mode anyone can claim any name, so the address pays for every connection.
 */
// Over 60 lines with its middleware: the checks run in order, and the per-connection `release`
// must see every step's state (issue 24 #5), so they stay in one closure.
export function handshake(options: HandshakeOptions) {
  const { config, connections } = options;
  const open = config.AUTH_MODE === "open";

  async function charge(limit: RateLimit | undefined, key: string, what: string): Promise<void> {
    if (!limit) return;
    const result = await limit.consume(key);
    if (result.ok) return;
    options.metrics.rateLimited.inc({ kind: "connection" });
    throw new HandshakeError("rate_limited", `too many ${what}; retry in ${result.retryAfterMs} ms`, result.retryAfterMs);
  }

  return async (socket: ChatSocket, next: (err?: ExtendedError) => void): Promise<void> => {
    // The per-user connection count must be undone however the connection ends. Socket.IO drops a
    // socket whose transport closed during this middleware without any `disconnect` (issue 24 #5),
    // so the Engine.IO connection's `close` is listened to, before the first await. One closure per
    // connection: it must know its own state.
    let countedUser: string | undefined;
    let gone = false;
    const release = () => {
      if (gone) return;
      gone = true;
      socket.conn.off("close", release);
      if (countedUser !== undefined) void connections.disconnect(countedUser).catch(() => undefined);
    };
    socket.conn.once("close", release);
    // Under load the client may already be gone when this middleware starts: its `close` fired
    // before the listener above, and only the connection's state tells.
    const closedNow = () => gone || socket.conn.readyState === "closing" || socket.conn.readyState === "closed";
    const address = options.clientAddress(socket);
    try {
      const { origin, host } = socket.handshake.headers;
      if (!originAllowed(config.CORS_ORIGINS, origin, host)) {
        throw new HandshakeError(
          "forbidden",
          `this page's origin (${String(origin).slice(0, 200)}) may not connect: only the chat's own origin and those in its CORS_ORIGINS may`,
        );
      }
      if (options.draining()) throw new HandshakeError("unavailable", "this pod is shutting down: connect again (to another pod)", DRAINING_RETRY_MS);
      if (open) await charge(options.addressLimit, address, "new connections from this address");
      let session;
      try {
        session = await options.authenticate(socket.handshake);
        if (await isRevoked(options.redis, session.jti)) throw new HandshakeError("unauthorized", "the token has been revoked");
      } catch (err) {
        if (!open && err instanceof HandshakeError) await charge(options.addressLimit, address, "failed connections from this address");
        throw err;
      }
      if (!open) await charge(options.userLimit, session.user.id, "new connections for this user");
      if (config.MAX_CONNECTIONS_PER_USER > 0) {
        if (closedNow()) throw closed();
        // Set before the await, so that `release` uncounts whatever happens next. Should the
        // transport close meanwhile, its uncount reaches Redis after this count, on the same connection.
        countedUser = session.user.id;
        const total = await connections.connect(countedUser);
        if (closedNow()) throw closed();
        if (total > config.MAX_CONNECTIONS_PER_USER) {
          throw new HandshakeError("limit_exceeded", `at most ${config.MAX_CONNECTIONS_PER_USER} connections per user; close one first`);
        }
      }
      socket.data.session = session;
      socket.data.user = session.user;
      // Counted: `release` stays on the transport's close until the socket is connected, when
      // `adoptRelease` swaps it for a listener shared by every connection (no closure is kept per
      // connection for its whole life: about 0.25 KiB each).
      if (countedUser !== undefined) socket.data.release = release;
      else release();
      next();
    } catch (err) {
      release();
      if (err instanceof HandshakeError) return next(err);
      options.log.warn({ err: (err as Error).message }, "handshake failed");
      next(new HandshakeError("unavailable", "the server cannot check this connection right now; retry shortly"));
    }
  };
}

const closed = () => new HandshakeError("unavailable", "the connection closed during the handshake");

/**
 * For the "connection" handler: a counted socket is connected now, so Socket.IO will emit its
 * `disconnect` however it ends, and the handshake's per-connection `release` is swapped for
 * `uncount`, a listener shared by every socket (`this` is the socket).
 */
export function adoptRelease(socket: ChatSocket, uncount: (this: ChatSocket) => void): void {
  const { release } = socket.data;
  if (!release) return;
  socket.data.release = undefined;
  socket.conn.off("close", release);
  socket.once("disconnect", uncount);
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
