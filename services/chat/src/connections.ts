import type { Server as HttpServer } from "node:http";
import type { Socket as NetSocket } from "node:net";

export interface Connections {
  /** TCP connections open now. */
  size(): number;
  /** Destroys every open TCP connection; returns how many there were. */
  destroyAll(): number;
}

/**
 * Every TCP connection the HTTP server accepted and that is still open, whatever it became: a
 * WebSocket (upgraded sockets leave Node's own HTTP bookkeeping, so `closeAllConnections()` does
 * not reach them), a long-poll in flight, a keep-alive between requests, or a peer that connected
 * and never sent a byte.
 *
 * Why: at shutdown, `server.close()` waits for all of them. A client that stops reading never
 * takes the close frame off its socket and a client that never answers it keeps `ws` waiting 30 s,
 * so without this a drained pod could hang until SIGKILL. After the drain they are destroyed.
 * One Set entry and one shared listener per connection: no closure is allocated for it.
 */
export function trackConnections(server: HttpServer): Connections {
  const open = new Set<NetSocket>();
  function forget(this: NetSocket) {
    open.delete(this);
  }
  server.on("connection", (socket: NetSocket) => {
    open.add(socket);
    socket.on("close", forget);
  });
  return {
    size: () => open.size,
    destroyAll() {
      const count = open.size;
      for (const socket of open) socket.destroy();
      open.clear();
      return count;
    },
  };
}
