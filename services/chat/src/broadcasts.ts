import type { Namespace } from "socket.io";

/** A Socket.IO packet as the adapter encodes it: `data` is `[event, payload]` for an event. */
interface AdapterPacket {
  data?: unknown[];
}

type Recipient = (socket: unknown) => void;

interface Hookable {
  _encode(packet: AdapterPacket, opts: unknown): unknown;
  apply(opts: unknown, callback: Recipient): void;
}

/** Called once per broadcast delivered to this pod's sockets. */
export type BroadcastObserver = (event: string, payload: unknown, recipients: number) => void;

/**
 * Calls `observe(event, payload, recipients)` once for every broadcast this pod delivers to its
 * sockets, whether it was emitted here or came over the Redis bus.
 *
 * Why not `socket.onAnyOutgoing()`: that runs once per recipient, and for each one Socket.IO
 * copies the listener list and calls it with spread arguments, which is real work on the hot
 * path when a message fans out to a 1000-member room. Counting per broadcast costs one closure
 * per message instead.
 *
 * How: every broadcast of Socket.IO's in-memory adapter, which the Redis adapters extend, encodes
 * the packet (`_encode`) and then walks the recipients (`apply`), synchronously; this wraps those
 * two methods on the one adapter instance. If a future adapter lacks them, nothing is counted
 * rather than anything breaking.
 */
export function observeBroadcasts(adapter: Namespace["adapter"], observe: BroadcastObserver): void {
  const target = adapter as unknown as Hookable;
  const encode = target._encode;
  const apply = target.apply;
  if (typeof encode !== "function" || typeof apply !== "function") return;
  let pending: AdapterPacket | undefined;
  target._encode = function (this: Hookable, packet, opts) {
    pending = packet;
    return encode.call(this, packet, opts);
  };
  target.apply = function (this: Hookable, opts, callback) {
    const packet = pending;
    pending = undefined;
    // fetchSockets(), socketsJoin() and the like walk sockets without encoding anything.
    if (!Array.isArray(packet?.data) || typeof packet.data[0] !== "string") return apply.call(this, opts, callback);
    let recipients = 0;
    apply.call(this, opts, (socket) => {
      recipients++;
      callback(socket);
    });
    observe(packet.data[0], packet.data[1], recipients);
  };
}
