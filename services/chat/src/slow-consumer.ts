import type { Socket as NetSocket } from "node:net";
import type { Server } from "socket.io";
import { SLOW_CONSUMER_CLOSE, type Logger } from "@chat/shared";
import { closeWithReason, queuedBytes, rawSocketOf, type EngineConn } from "./compat/index.js";

export interface SlowConsumerOptions {
  /** Bytes one connection may have queued and unread before it is closed; 0 turns the budget off. */
  maxBytes: number;
  log: Logger;
  /** Called once per connection closed for being over budget (for a metric). */
  onClose?: () => void;
  /**
   * How often every connection is checked, for what broadcasts do not cover (acks, catch-ups).
   * @default 1000
   */
  sweepMs?: number;
  /**
   * How long a WebSocket over budget has to show that its peer reads (see below).
   * @default 250
   */
  graceMs?: number;
  /**
   * How long a closed connection's TCP socket may keep its backlog for the peer to read up to the
   * close frame (and learn why) before it is destroyed.
   * @default 5000
   */
  lingerMs?: number;
}

export interface SlowConsumers {
  /** Closes `conn` and returns true if adding `adding` bytes would put it over budget. */
  overBudget: (conn: EngineConn | undefined, adding: number) => boolean;
  stop(): void;
}

/**
 * The per-connection outbound budget. Every broadcast checks each recipient before writing to it
 * (fanout.ts); a sweep checks every connection once a second for the rest. A connection over
 * budget gets a WebSocket close frame with code 4008 and reason `slow_consumer` (after what it
 * has not read yet; a long-polling one is simply closed), Engine.IO's queue for it is dropped, and
 * its TCP socket is destroyed `lingerMs` later if the peer has not read that far. @chat/client
 * reconnects and re-joins with `since`, so it catches up from the room log and loses nothing.
 *
 * One exception keeps a reader that is merely behind from being cut off in a loop (a catch-up
 * bigger than the budget, say): a WebSocket over budget gets `graceMs`, renewed each time the
 * kernel takes more of its bytes (the TCP socket's public `bytesWritten - writableLength`), and
 * meanwhile may go up to 8 times over budget. A peer that reads nothing is closed within
 * `graceMs` of going over. The state for that lives in a WeakMap touched only over budget: per
 * delivery the check is otherwise one getter and a comparison.
 */
export function guardSlowConsumers(
  io: Server,
  { maxBytes, log, onClose, sweepMs = 1000, graceMs = 250, lingerMs = 5000 }: SlowConsumerOptions,
): SlowConsumers | undefined {
  if (maxBytes <= 0) return undefined;
  const ceiling = maxBytes * 8;
  const progress = new WeakMap<NetSocket, { taken: number; at: number }>();
  /** Whether the peer read something lately (the kernel took bytes off the socket). */
  const reading = (raw: NetSocket | undefined): boolean => {
    if (!raw) return false;
    const taken = raw.bytesWritten - raw.writableLength;
    const now = Date.now();
    const seen = progress.get(raw);
    if (!seen || taken > seen.taken) {
      progress.set(raw, { taken, at: now });
      return true;
    }
    return now - seen.at < graceMs;
  };
  const close = (conn: EngineConn, queued: number) => {
    const raw = closeWithReason(conn, SLOW_CONSUMER_CLOSE.code, SLOW_CONSUMER_CLOSE.reason);
    if (raw && !raw.destroyed) setTimeout(destroy, lingerMs, raw).unref();
    onClose?.();
    log.info({ queuedBytes: queued, maxBytes }, "closed a connection that stopped reading (slow_consumer)");
  };
  const overBudget = (conn: EngineConn | undefined, adding: number): boolean => {
    if (!conn || conn.readyState !== "open") return false;
    const queued = queuedBytes(conn) + adding;
    if (queued <= maxBytes) return false;
    if (queued <= ceiling && reading(rawSocketOf(conn))) return false;
    close(conn, queued);
    return true;
  };
  const sweep = setInterval(() => {
    for (const socket of io.of("/").sockets.values()) overBudget(socket.conn as unknown as EngineConn, 0);
  }, sweepMs);
  sweep.unref();
  return { overBudget, stop: () => clearInterval(sweep) };
}

function destroy(raw: NetSocket): void {
  raw.destroy();
}
