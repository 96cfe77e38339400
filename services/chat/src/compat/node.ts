import type { Socket as NetSocket } from "node:net";

// Private parts of Node's own TCP sockets, read from Node 20.20 (lib/net.js `_writeGeneric` and
// lib/internal/stream_base_commons.js `writeGeneric`, unchanged through 24.x): a socket's
// `_handle` (the libuv stream: `writeBuffer(req, buffer)` returns a libuv error code, and
// `writeQueueSize` is what libuv still holds), and the `stream_wrap` binding's `WriteWrap` (the
// request object `writeBuffer` needs), `streamBaseState` and `kLastWriteWasAsync`.

/** A libuv stream handle, as far as this file uses it. */
interface StreamHandle {
  writeBuffer(req: WriteReq, data: Buffer): number;
  writeQueueSize: number;
}

interface WriteReq {
  handle: StreamHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  socket: NetSocket;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface TcpWrapBinding {
  TCP: new (type: number) => Partial<StreamHandle> & { close(): void };
  constants: { SOCKET: number };
}

/** `process.binding` (deprecated in the docs only, DEP0111; `stream_wrap` and `tcp_wrap` are on its allow-list). */
function binding<T>(name: string): Partial<T> | undefined {
  try {
    return (process as unknown as { binding(name: string): Partial<T> }).binding(name);
  } catch {
    return undefined;
  }
}

function loadStreamWrap(): StreamWrapBinding | undefined {
  const b = binding<StreamWrapBinding>("stream_wrap");
  if (typeof b?.WriteWrap !== "function" || !(b.streamBaseState instanceof Int32Array) || typeof b.kLastWriteWasAsync !== "number") return undefined;
  return b as StreamWrapBinding;
}

/** A write that libuv finished later (the kernel's buffer was full) failed: the socket is gone. */
function onComplete(this: WriteReq, status: number): void {
  if (status < 0) this.socket.destroy();
}

/**
 * A function that writes a frame to a TCP socket's libuv handle itself, or undefined when this
 * Node does not look as expected (then `socket.write` it is).
 *
 * Why: `socket.write()` runs a frame through the Writable stream's machinery (state checks,
 * `_write`, `writeGeneric`, the write request, then a `process.nextTick` per socket for the
 * callback nobody passed) before the one thing that matters, the handle's `writeBuffer`. On a
 * fan-out that is per recipient, and the stream code is megamorphic in a process with as many
 * kinds of stream as a pod has. Measured at 30 msg/s into 1000 members (docs/performance.md):
 * about 8% less server CPU per delivery on Node 20; on Node 24, whose stream code is faster, 1–3%,
 * within the runs' spread.
 *
 * It only ever does so when the socket's stream has nothing of its own waiting (`writableLength`
 * 0, not corked) and libuv holds nothing (`writeQueueSize` 0), so the bytes leave in the same order
 * as with `socket.write()`, and everything queued stays in the stream's `writableLength` that the
 * outbound budget reads: a write the kernel takes only in part leaves its remainder in libuv, and
 * every later write to that socket takes `socket.write()` until libuv has sent it. So the budget
 * misses at most one frame per connection. A write that fails is handed to `socket.write()`, which
 * meets the same error and destroys the socket as it always does. TLS sockets are left to `write()`.
 */
export function handleWriter(): ((raw: NetSocket, frame: Buffer) => void) | undefined {
  const wrap = loadStreamWrap();
  if (!wrap) return undefined;
  const { WriteWrap, streamBaseState, kLastWriteWasAsync } = wrap;
  return (raw, frame) => {
    const handle = (raw as unknown as { _handle?: StreamHandle | null; encrypted?: boolean })._handle;
    if (handle?.writeQueueSize !== 0 || raw.writableLength !== 0 || raw.writableCorked !== 0 || (raw as { encrypted?: boolean }).encrypted) {
      raw.write(frame);
      return;
    }
    const req = new WriteWrap();
    req.handle = handle;
    req.oncomplete = onComplete;
    req.async = false;
    req.bytes = 0;
    req.buffer = null;
    req.socket = raw;
    if (handle.writeBuffer(req, frame) !== 0) {
      raw.write(frame);
      return;
    }
    // libuv holds the part the kernel did not take: keep the bytes alive until it is sent.
    if (streamBaseState[kLastWriteWasAsync]) req.buffer = frame;
  };
}

/**
 * Start-up check: the `stream_wrap` binding has what `handleWriter` uses, and a TCP handle (made,
 * never connected, then closed) has a `writeBuffer` method and a numeric `writeQueueSize`.
 */
export function checkHandleWrites(): boolean {
  if (!loadStreamWrap()) return false;
  const tcp = binding<TcpWrapBinding>("tcp_wrap");
  if (typeof tcp?.TCP !== "function" || typeof tcp.constants?.SOCKET !== "number") return false;
  try {
    const handle = new tcp.TCP(tcp.constants.SOCKET);
    const ok = typeof handle.writeBuffer === "function" && typeof handle.writeQueueSize === "number";
    handle.close();
    return ok;
  } catch {
    return false;
  }
}
