import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { Socket as NetSocket } from "node:net";
import type { Server as HttpsServer } from "node:https";
import type { RequestHandler } from "express";
import type { Server } from "socket.io";

/**
 * Headers for every HTTP answer of the chat port. Four static headers, written here rather than
 * with helmet, whose default CSP adds `upgrade-insecure-requests` (it would turn the page's
 * `ws://` into `wss://` on a plain-HTTP laptop run).
 *
 * The page loads only its own script and stylesheet and talks only to its own origin (CSP 3's
 * `'self'` covers `ws:`/`wss:` to the same host); no other site may frame it (clickjacking), and
 * neither the page's address (which may hold `#token=` only until the page reads it) nor anything
 * else leaks in a Referer.
 */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader(
    "Content-Security-Policy",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
      "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  );
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  next();
};

/**
 * A slow client must send its request headers within 10 s and the whole request within 30 s
 * (Node's defaults are 60 s and 5 min, checked every 30 s: a slowloris held 200 sockets for 80 s).
 * Long-polling is unaffected: these bound the request, not the wait for the answer. Set as
 * properties, before `listen`, so that they apply to the http and the https server alike.
 */
export function limitSlowRequests(server: HttpServer | HttpsServer): void {
  Object.assign(server, { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 });
}

/** Counts per address, dropping an address at zero so the map does not grow with every client ever seen. */
class Tally {
  private readonly counts = new Map<string, number>();
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  add(key: string, delta: 1 | -1): void {
    const next = this.get(key) + delta;
    if (next > 0) this.counts.set(key, next);
    else this.counts.delete(key);
  }
}

export interface GuardOptions {
  /** Open TCP sockets, and open Engine.IO sessions, one address may hold (0: no cap). */
  maxPerAddress: number;
  /** The client address of an HTTP request, through trusted proxies. */
  clientAddress(req: IncomingMessage): string;
  /** True for a TCP peer that is a trusted proxy: its sockets carry many clients and are not capped. */
  isProxy(address: string): boolean;
  /** Told each time a cap refuses something. */
  onRefused?(what: "socket" | "session"): void;
}

/**
 * Bounds what one address can hold open on this pod, before any Redis work:
 * - TCP sockets (slowloris), except a trusted proxy's;
 * - Engine.IO sessions: a long-polling session holds no socket between requests, so it is counted
 *   on its own, and a new one is refused while its address holds `maxPerAddress`.
 */
export function guardServer(httpServer: HttpServer | HttpsServer, io: Server, options: GuardOptions): void {
  const max = options.maxPerAddress;
  if (max <= 0) return;

  const sockets = new Tally();
  httpServer.on("connection", (socket: NetSocket) => {
    const address = socket.remoteAddress;
    if (!address || options.isProxy(address)) return;
    if (sockets.get(address) >= max) {
      options.onRefused?.("socket");
      socket.destroy();
      return;
    }
    sockets.add(address, 1);
    socket.once("close", () => sockets.add(address, -1));
  });

  const sessions = new Tally();
  io.engine.on("connection", (conn: { request: IncomingMessage; once(event: "close", listener: () => void): void }) => {
    const address = options.clientAddress(conn.request);
    sessions.add(address, 1);
    conn.once("close", () => sessions.add(address, -1));
  });
  const allowRequest = io.engine.opts.allowRequest;
  io.engine.opts.allowRequest = (req, callback) => {
    // Only a handshake (no `sid` yet) opens a session; the requests of an open session pass.
    if (!/[?&]sid=/.test(req.url ?? "") && sessions.get(options.clientAddress(req)) >= max) {
      options.onRefused?.("session");
      return callback("too many open connections from this address; close one first", false);
    }
    if (allowRequest) return allowRequest(req, callback);
    callback(null, true);
  };
}
