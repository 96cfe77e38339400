import type { Server } from "socket.io";
import type { Logger } from "@chat/shared";

/** What a client hears just before a draining pod closes its connection. */
export const SHUTDOWN_EVENT = { reason: "draining", reconnect: true } as const;

/** The shortest wait between two batches: finer pacing only costs timers. */
const MIN_TICK_MS = 100;

/**
 * Disconnects every client evenly over `seconds` (client i of n at i/n of the window), not all at
 * once, so the other pods take the reconnects as a trickle rather than a storm.
 *
 * Each client first gets a `shutdown` event, then its Engine.IO connection closes (after that
 * event is flushed). Closing the transport rather than the Socket.IO socket matters: the client
 * sees the reason `transport close`, after which plain socket.io-client reconnects by itself
 * (through the Service, to another pod); `socket.disconnect(true)` would give it
 * `io server disconnect`, after which it never does.
 */
export async function drainClients(io: Server, seconds: number, log: Logger): Promise<void> {
  const sockets = [...io.of("/").sockets.values()];
  const windowMs = Math.max(1, seconds * 1000);
  const start = Date.now();
  log.info({ clients: sockets.length, seconds }, "draining clients");
  let next = 0;
  while (next < sockets.length) {
    // Everyone whose turn has come (a loaded event loop may have let several turns pass).
    const due = Math.min(sockets.length, Math.floor(((Date.now() - start) * sockets.length) / windowMs) + 1);
    for (; next < due; next++) {
      const socket = sockets[next]!;
      if (!socket.connected) continue;
      socket.emit("shutdown", SHUTDOWN_EVENT);
      socket.conn.close();
    }
    if (next < sockets.length) {
      const turn = start + (next * windowMs) / sockets.length;
      await new Promise((resolve) => setTimeout(resolve, Math.max(MIN_TICK_MS, turn - Date.now())));
    }
  }
  log.info({ clients: sockets.length }, "drained");
}
