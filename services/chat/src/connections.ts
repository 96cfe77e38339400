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
 *
 * Why no `close` listener per socket: a third listener for one event grows the emitter's listener
 * array to a capacity of 19 (about 0.15 KiB on each of thousands of idle connections). Instead the
 * Set forgets destroyed sockets in a sweep whenever it has doubled since the last one (amortised
 * O(1) per connection) and every `SWEEP_MS`, so that a closed socket (and the WebSocket objects its
 * listeners still hold) waits at most that long to be collected.
 */
export function trackConnections(server: HttpServer): Connections {
  const open = new Set<NetSocket>();
  let sweepAt = MIN_SWEEP;
  const sweep = () => {
    // Deleting the entry being visited is safe while iterating a Set.
    for (const socket of open) if (socket.destroyed) open.delete(socket);
    sweepAt = Math.max(MIN_SWEEP, open.size * 2);
  };
  server.on("connection", (socket: NetSocket) => {
    open.add(socket);
    if (open.size >= sweepAt) sweep();
  });
  setInterval(sweep, SWEEP_MS).unref();
  return {
    size() {
      sweep();
      return open.size;
    },
    destroyAll() {
      let count = 0;
      for (const socket of open) {
        if (socket.destroyed) continue;
        socket.destroy();
        count++;
      }
      open.clear();
      return count;
    },
  };
}

/** Below this many, the Set is not swept on a new connection. */
const MIN_SWEEP = 1024;
/** How often closed sockets are forgotten anyway. */
const SWEEP_MS = 5000;
