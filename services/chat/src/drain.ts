import type { Server } from "socket.io";
import type { Logger } from "@chat/shared";

/** What a client hears just before a draining pod closes its connection. */
export const SHUTDOWN_EVENT = { reason: "draining", reconnect: true } as const;

/** The shortest wait between two batches: finer pacing only costs timers. */
export const MIN_TICK_MS = 100;

/**
 * How many of `total` clients are due `elapsedMs` into a window of `windowMs`: client i (from 0)
 * is due at i/total of the window, so the first goes at once and the last at (total-1)/total.
 */
export function dueBy(elapsedMs: number, total: number, windowMs: number): number {
  // The epsilon absorbs floating-point rounding: woken exactly at client i's turn (i × window /
  // total, as waitForTurn computes it), i × window / total × total / window can come out a hair
  // under i, which would find nobody due and sleep another tick (found by drain-pacing.test.ts).
  return Math.min(total, Math.floor((elapsedMs * total) / windowMs + 1e-9) + 1);
}

/** How long to wait before client `next` of `total` is due, `elapsedMs` into the window; never under `MIN_TICK_MS`. */
export function waitForTurn(next: number, total: number, windowMs: number, elapsedMs: number): number {
  return Math.max(MIN_TICK_MS, (next * windowMs) / total - elapsedMs);
}

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
export async function drainClients(io: Pick<Server, "of">, seconds: number, log: Logger): Promise<void> {
  const sockets = [...io.of("/").sockets.values()];
  const windowMs = Math.max(1, seconds * 1000);
  const start = Date.now();
  log.info({ clients: sockets.length, seconds }, "draining clients");
  let next = 0;
  while (next < sockets.length) {
    // Everyone whose turn has come (a loaded event loop may have let several turns pass).
    const due = dueBy(Date.now() - start, sockets.length, windowMs);
    for (; next < due; next++) {
      const socket = sockets[next]!;
      if (!socket.connected) continue;
      socket.emit("shutdown", SHUTDOWN_EVENT);
      socket.conn.close();
    }
    if (next < sockets.length) await new Promise((resolve) => setTimeout(resolve, waitForTurn(next, sockets.length, windowMs, Date.now() - start)));
  }
  log.info({ clients: sockets.length }, "drained");
}
