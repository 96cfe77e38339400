import type { Socket as NetSocket } from "node:net";
import type { Server } from "socket.io";
import { rawSocketOf, type EngineConn } from "./compat/index.js";

export interface CoalesceOptions {
  /**
   * Called with the number of packets each time several leave in one write (for a metric).
   * @default undefined
   */
  onCoalesced?: (packets: number) => void;
}

/**
 * Sends each batch of packets that queued up for one WebSocket in a single write.
 *
 * Why: fanning a message out to a room costs one `writev()` per recipient, and on a busy pod that
 * syscall is most of the CPU (see docs/performance.md). Engine.IO writes one packet at a time per
 * connection: packets that arrive while a write is in flight wait in the socket's buffer and are
 * then handed to the transport together, which still writes them one by one. Corking the TCP
 * socket around that batch makes it leave in one `writev()`. Nothing changes while a pod keeps
 * up (a batch of one is written as before); once it falls behind, every delivery it is late with
 * shares a syscall with the others, so the busier the pod the cheaper each delivery becomes, and
 * the pod catches up instead of falling further behind.
 *
 * It hooks only the public `flush` event of the Engine.IO server, which is emitted with the
 * batch just before it is written; the uncork is queued on `process.nextTick`, after the write.
 */
export function coalesceWrites(io: Server, { onCoalesced }: CoalesceOptions = {}): void {
  io.engine.on("flush", (socket: EngineConn, buffer: unknown[]) => {
    if (buffer.length < 2) return;
    const raw = rawSocketOf(socket);
    if (!raw || raw.writable === false) return;
    raw.cork();
    process.nextTick(uncork, raw);
    onCoalesced?.(buffer.length);
  });
}

function uncork(raw: NetSocket): void {
  raw.uncork();
}
