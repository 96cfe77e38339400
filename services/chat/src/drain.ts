import type { Server } from "socket.io";
import type { Logger } from "@chat/shared";

/** What a client hears just before a draining pod closes its connection. */
export const SHUTDOWN_EVENT = { reason: "draining", reconnect: true } as const;

/**
 * Disconnects every client in even batches over `seconds`, not all at once, so the other pods
 * take the reconnects as a trickle rather than a storm. Each client first gets a `shutdown`
 * event, then its connection closes; socket.io-client reconnects on its own (through the Service,
 * to another pod), and @chat/client re-joins its rooms with `since`, so nothing is missed.
 */
export async function drainClients(io: Server, seconds: number, log: Logger): Promise<void> {
  const sockets = [...io.of("/").sockets.values()];
  const tickMs = 100;
  const ticks = Math.max(1, Math.floor((seconds * 1000) / tickMs));
  const perTick = Math.max(1, Math.ceil(sockets.length / ticks));
  log.info({ clients: sockets.length, seconds, perTick }, "draining clients");
  for (let start = 0; start < sockets.length; start += perTick) {
    for (const socket of sockets.slice(start, start + perTick)) {
      if (!socket.connected) continue;
      socket.emit("shutdown", SHUTDOWN_EVENT);
      socket.disconnect(true);
    }
    if (start + perTick < sockets.length) await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  log.info({ clients: sockets.length }, "drained");
}
