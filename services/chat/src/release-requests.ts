import { ServerResponse, type IncomingMessage } from "node:http";
import type { Server } from "socket.io";
import { releaseUpgradeResponse, type UpgradeResponse } from "./compat/index.js";

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
    if (!(res instanceof ServerResponse) && "req" in res && typeof res.writeHead === "function") releaseUpgradeResponse(res);
    next();
  });
  io.on("connection", (socket) => {
    (socket.conn as unknown as { request: IncomingMessage | null }).request = null;
    socket.handshake.headers = {};
  });
}
