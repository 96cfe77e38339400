import { ServerResponse, type IncomingMessage } from "node:http";
import type { Socket as NetSocket } from "node:net";
import type { Server } from "socket.io";

/** What Engine.IO hands its middlewares as the response of a WebSocket upgrade. */
interface UpgradeResponse {
  req: IncomingMessage | null;
  socket: NetSocket;
  writeHead(...args: unknown[]): unknown;
}

/**
 * Lets the HTTP request behind each connection be collected once the connection is up.
 *
 * Why: Socket.IO keeps each session's first request as `socket.request` (its memory-usage guide
 * suggests dropping it), and engine.io 6.6 also keeps every WebSocket upgrade request for the life
 * of the connection: the upgrade's response object stays a `close` listener of the TCP socket (it
 * re-emits `close` for HTTP middlewares such as pino-http; this service has none), and it holds
 * the request. Together that is about 2 KiB per idle connection of request, headers and stream
 * state that nothing reads after the handshake. The headers themselves (a browser sends a dozen
 * or so) are read only by the handshake's middleware (the token, X-Forwarded-For), so they go too;
 * `socket.handshake` keeps the address, the query and `auth`.
 */
export function releaseRequests(io: Server): void {
  io.engine.use((_req: IncomingMessage, res: ServerResponse | UpgradeResponse, next: () => void) => {
    if (!(res instanceof ServerResponse) && "req" in res && typeof res.writeHead === "function") {
      // The response registered its `close` listener when it was made, just before the middlewares.
      const closers = res.socket.rawListeners("close");
      const own = closers[closers.length - 1];
      // Engine.IO calls writeHead() just before handing the socket to `ws`, which completes the
      // upgrade synchronously; neither the response nor its request is read after that.
      // eslint-disable-next-line @typescript-eslint/unbound-method -- called below as writeHead.apply(res, …)
      const writeHead = res.writeHead;
      res.writeHead = (...args: unknown[]) => {
        setImmediate(() => {
          res.req = null;
          if (own) res.socket.removeListener("close", own as (...a: unknown[]) => void);
        });
        return writeHead.apply(res, args);
      };
    }
    next();
  });
  io.on("connection", (socket) => {
    (socket.conn as unknown as { request: IncomingMessage | null }).request = null;
    socket.handshake.headers = {};
  });
}
