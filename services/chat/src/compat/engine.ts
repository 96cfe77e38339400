import type { IncomingMessage } from "node:http";
import { Socket as NetSocket } from "node:net";
import { WebSocket } from "ws";

// Private fields of engine.io 6.6.12 and ws 8.21.3, read from those versions (see ./index.ts).

/** An Engine.IO socket (engine.io 6.6.12 `Socket`), as far as the chat reads it. */
export interface EngineConn {
  readyState?: string;
  /** Private: packets queued before they are handed to the transport. */
  writeBuffer?: QueuedPacket[];
  transport?: {
    name?: string;
    writable?: boolean;
    perMessageDeflate?: unknown;
    /** The `ws` WebSocket (engine.io's websocket transport keeps `req.websocket` here). */
    socket?: WsSocket;
  };
  /** Public: with `discard`, drops the write buffer and closes the transport at once. */
  close(discard?: boolean): void;
}

interface QueuedPacket {
  data?: unknown;
  options?: { wsPreEncodedFrame?: Buffer[] };
}

/** A `ws` 8.21.3 WebSocket: `readyState`, `bufferedAmount` and `close()` are public, `_socket`/`_sender` are not. */
interface WsSocket {
  readyState?: number;
  bufferedAmount?: number;
  close?(code?: number, reason?: string): void;
  _socket?: NetSocket;
  _sender?: { _state?: number; _queue?: unknown[] };
}

const WS_OPEN = 1;

/** The TCP socket under a WebSocket connection (`ws`'s private `_socket`), if there is one. */
export function rawSocketOf(conn: EngineConn | undefined): NetSocket | undefined {
  const raw = conn?.transport?.name === "websocket" ? conn.transport.socket?._socket : undefined;
  return raw instanceof NetSocket ? raw : undefined;
}

/**
 * The TCP socket to write a pre-encoded WebSocket frame to directly, or undefined when that would
 * not give the same bytes in the same order as Engine.IO: the connection is open on a WebSocket,
 * nothing waits in Engine.IO's `writeBuffer`, the transport has no write in flight, there is no
 * compression (Engine.IO itself sends pre-encoded frames only without it), and `ws`'s sender is
 * idle (`_state` 0 = DEFAULT, empty `_queue`: not deflating, nothing waiting behind a blob).
 */
export function directSocketOf(conn: EngineConn | undefined): NetSocket | undefined {
  const transport = conn?.transport;
  if (conn?.readyState !== "open" || conn.writeBuffer?.length !== 0 || transport?.name !== "websocket" || transport.writable !== true) return undefined;
  if (transport.perMessageDeflate) return undefined;
  const ws = transport.socket;
  const raw = ws?._socket;
  const sender = ws?._sender;
  // ws 8.21.3 queues a send only while `_state` is not DEFAULT (deflating, or reading a Blob) and
  // empties the queue synchronously as it returns to DEFAULT, so DEFAULT means nothing queued: the
  // queue itself is not read here (one object less to touch per recipient of every broadcast).
  if (ws?.readyState !== WS_OPEN || !raw || raw.writable !== true || sender?._state !== 0) return undefined;
  return raw;
}

/** Engine.IO `writeBuffer` arrays already summed: how many entries, and their bytes. */
const summed = new WeakMap<object, { entries: number; bytes: number }>();

/**
 * Bytes queued for one connection and not yet taken by the kernel: Engine.IO's `writeBuffer`
 * (private; each packet's pre-encoded frame, or its data's length), plus `ws`'s public
 * `bufferedAmount` (the TCP socket's `writableLength` and what `ws`'s sender holds back), which
 * also covers the frames written directly. Cheap when nothing is queued: the buffer is summed
 * only when it is not empty, and then only its new entries (Engine.IO appends to one array
 * until it flushes, and then starts another).
 */
export function queuedBytes(conn: EngineConn | undefined): number {
  if (!conn) return 0;
  const ws = conn.transport?.name === "websocket" ? conn.transport.socket : undefined;
  let bytes = typeof ws?.bufferedAmount === "number" ? ws.bufferedAmount : 0;
  const queue = conn.writeBuffer;
  if (Array.isArray(queue) && queue.length > 0) {
    let sum = summed.get(queue);
    if (!sum || sum.entries > queue.length) summed.set(queue, (sum = { entries: 0, bytes: 0 }));
    for (; sum.entries < queue.length; sum.entries++) sum.bytes += packetBytes(queue[sum.entries]);
    bytes += sum.bytes;
  }
  return bytes;
}

function packetBytes(packet: QueuedPacket | undefined): number {
  const frame = packet?.options?.wsPreEncodedFrame;
  if (Array.isArray(frame)) return frame.reduce((n, part) => n + (Buffer.isBuffer(part) ? part.length : 0), 0);
  const data = packet?.data;
  // A string's length undercounts non-ASCII text (up to 3x); an exact UTF-8 count would cost a
  // pass over every queued packet, and the budget is a bound, not a meter.
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 16;
}

/**
 * Closes a WebSocket with `code` and `reason` in its close frame (public `ws` API), then drops
 * what Engine.IO still holds for it (`close(true)`). Returns the TCP socket under it, if any, for
 * the caller to destroy should the peer never read as far as the close frame.
 */
export function closeWithReason(conn: EngineConn, code: number, reason: string): NetSocket | undefined {
  const raw = rawSocketOf(conn);
  const ws = conn.transport?.name === "websocket" ? conn.transport.socket : undefined;
  if (typeof ws?.close === "function" && ws.readyState === WS_OPEN) ws.close(code, reason);
  conn.close(true);
  return raw;
}

/** What Engine.IO 6.6.12 hands its middlewares as the response of a WebSocket upgrade (`WebSocketResponse`). */
export interface UpgradeResponse {
  req: IncomingMessage | null;
  socket: NetSocket;
  writeHead(...args: unknown[]): unknown;
}

/**
 * Lets an upgrade's request and response be collected once the upgrade is done. engine.io
 * 6.6.12's `WebSocketResponse` constructor registers `socket.once("close", ...)` on the TCP
 * socket, just before the middlewares run: the last `close` listener is its own. Engine.IO calls
 * `writeHead()` just before handing the socket to `ws`, which completes the upgrade
 * synchronously; neither the response nor its request is read after that.
 */
export function releaseUpgradeResponse(res: UpgradeResponse): void {
  const closers = res.socket.rawListeners("close");
  const own = closers[closers.length - 1];
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

/**
 * Start-up check of the `ws` internals the direct writes and the coalescing read: a server-side
 * WebSocket set on an unconnected TCP socket must expose `_socket`, an idle `_sender` and a
 * `bufferedAmount` of 0.
 */
export function checkWs(): boolean {
  const raw = new NetSocket();
  try {
    const ws = new WebSocket(null as never, undefined, {}) as unknown as WsSocket & { setSocket(s: NetSocket, head: Buffer, o: object): void };
    ws.setSocket(raw, Buffer.alloc(0), { maxPayload: 1024 });
    return ws._socket === raw && ws._sender?._state === 0 && Array.isArray(ws._sender._queue) && ws.bufferedAmount === 0;
  } catch {
    return false;
  } finally {
    raw.destroy();
  }
}
