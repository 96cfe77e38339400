import type { Socket as NetSocket } from "node:net";
import type { Namespace } from "socket.io";
import { directSocketOf, hookBroadcasts, type EngineConn, type Recipient } from "./compat/index.js";

/** Called once per broadcast delivered to this pod's sockets, with how many were written directly. */
export type BroadcastObserver = (event: string, payload: unknown, recipients: number, direct: number) => void;

export interface FanoutOptions {
  /**
   * Called once per event broadcast to this pod's sockets (from here or from the Redis bus).
   * @default undefined
   */
  observe?: BroadcastObserver;
  /**
   * Write each broadcast's frame straight to the recipients' TCP sockets when nothing is queued
   * before it; `false` leaves every write to Engine.IO (`FAST_PATH=off`, or a failed self-check).
   * @default true
   */
  direct?: boolean;
  /**
   * Called per recipient with the bytes about to be added for it; closes the connection and
   * returns true when that would put it over its outbound budget (slow-consumer.ts).
   * @default undefined (no budget)
   */
  overBudget?: (conn: EngineConn | undefined, adding: number) => boolean;
  /**
   * The budget `overBudget` enforces, in bytes. On the direct path everything queued for a
   * recipient is in its TCP socket's `writableLength` (directSocketOf requires Engine.IO's buffer
   * and `ws`'s sender to be empty), so a recipient below it is written to without the full check.
   * @default Infinity (every recipient gets the full check, when there is one)
   */
  maxBytes?: number;
  /**
   * Writes one direct recipient's frame (compat `handleWriter`, past Node's stream code).
   * @default `raw.write(frame)`
   */
  write?: (raw: NetSocket, frame: Buffer) => void;
}

/** One broadcast's fan-out state (compat `hookBroadcasts` keeps one per broadcast). */
interface Broadcast {
  packet: { data?: unknown[]; id?: number };
  /** The whole WebSocket frame when this broadcast may be written directly, else undefined. */
  frame: Buffer | undefined;
  size: number;
  /** Cork each direct recipient (several broadcasts in this tick). */
  cork: boolean;
  recipients: number;
  /** The direct recipients, written in done(). */
  targets: NetSocket[];
}

/**
 * Makes a room broadcast cheaper per recipient, keeps each recipient within its outbound budget,
 * and observes every broadcast once.
 *
 * Why: fanning a message out to a 1000-member room is nearly all of a busy pod's CPU, and most of
 * it is per recipient. Socket.IO already encodes each broadcast's WebSocket frame once (its
 * `wsPreEncodedFrame`), but then hands it to every recipient's Engine.IO socket, which makes a
 * packet object, emits four events, and has `ws` cork the TCP socket, write the frame header and
 * the payload separately and uncork. Here the header and payload are merged once per broadcast,
 * and the frame is written to each recipient's TCP socket directly whenever that gives the same
 * bytes in the same order (compat `directSocketOf`). Otherwise (long-polling, an upgrade, a write
 * in flight, compression, volatile or acknowledged broadcasts) the recipient takes Engine.IO's
 * path as before. Measured on the baseline server: about 30% less CPU per delivery
 * (bench/experiments/fanout-paths.cjs).
 *
 * The budget is checked for every recipient on both paths, before the write: what a client does
 * not read piles up in Engine.IO's buffer or in its TCP socket's, and without a bound a few
 * clients that stop reading grow the pod until it is OOM-killed.
 */
export function attachFanout(
  adapter: Namespace["adapter"],
  { observe, direct = true, overBudget, maxBytes = Infinity, write = streamWrite }: FanoutOptions = {},
): boolean {
  // Several broadcasts in one tick (a batch read from the bus, once the pod falls behind): from
  // the second one on (from the first when the last busy tick had several too), each recipient's
  // TCP socket is corked at its first direct write and uncorked on the next tick, so that the
  // tick's frames leave in one writev() per recipient instead of one write() per frame. The
  // bytes and their order are the same; a tick with one broadcast is written as before.
  let inTick = 0;
  let lastTick = 0;
  const corked: NetSocket[] = [];
  const endTick = () => {
    lastTick = inTick;
    inTick = 0;
    for (const raw of corked) raw.uncork();
    corked.length = 0;
  };
  return hookBroadcasts<Broadcast>(adapter, {
    encoded(encoded, opts) {
      const pre = opts.wsPreEncodedFrame;
      // ws writes a two-part frame with cork + write + write + uncork, a one-part frame with one write.
      if (direct && Array.isArray(pre) && pre.length === 2 && Buffer.isBuffer(pre[0]) && Buffer.isBuffer(pre[1])) opts.wsPreEncodedFrame = [Buffer.concat(pre)];
      const first = opts.wsPreEncodedFrame?.[0];
      const size = Buffer.isBuffer(first) ? (opts.wsPreEncodedFrame as Buffer[]).reduce((n, b) => n + b.length, 0) : 0;
      const frame = direct && encoded.id === undefined && !opts.volatile && opts.wsPreEncodedFrame?.length === 1 && Buffer.isBuffer(first) ? first : undefined;
      if (inTick++ === 0) process.nextTick(endTick);
      const cork = frame !== undefined && (inTick > 1 || lastTick > 1);
      return { packet: encoded, frame, size, cork, recipients: 0, targets: [] };
    },
    deliver(b, socket: Recipient) {
      b.recipients++;
      const conn = socket.client?.conn;
      const raw = b.frame && directSocketOf(conn);
      if (!raw) return overBudget?.(conn, b.size) ?? false;
      // The common case, a recipient that keeps up, costs one getter and a comparison; one with a
      // backlog gets the full check (grace for a reader that is merely behind, or the close).
      // What the kernel does not take stays in the socket's writableLength, counted before the
      // next write to it.
      if (raw.writableLength + b.size > maxBytes && overBudget?.(conn, b.size)) return true;
      b.targets.push(raw);
      return true;
    },
    done(b) {
      // The direct recipients are written after the walk, back to back: each gets exactly one
      // frame of this broadcast, and a public-path recipient's frame was queued in Engine.IO during
      // the walk, so every recipient's order is the same as with a write per step. Measured: about
      // 6% less of a pod's busy time than a write per step (CPU profile at 30 msg/s x 1000).
      const { frame, targets } = b;
      if (frame) {
        if (b.cork) {
          for (const raw of targets) {
            if (raw.writableCorked === 0) {
              raw.cork();
              corked.push(raw);
            }
            raw.write(frame);
          }
        } else {
          for (const raw of targets) write(raw, frame);
        }
      }
      const data = b.packet.data;
      if (observe && Array.isArray(data) && typeof data[0] === "string") observe(data[0], data[1], b.recipients, targets.length);
    },
  });
}

function streamWrite(raw: NetSocket, frame: Buffer): void {
  raw.write(frame);
}
