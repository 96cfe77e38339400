import { Adapter } from "socket.io-adapter";
import type { EngineConn } from "./engine.js";

// Private parts of socket.io-adapter 2.5.8 (`_encode`, `apply`) and socket.io 4.8.4
// (`client.writeToEngine`), read from those versions (see ./index.ts).

/** What Socket.IO hands an adapter's recipient callback: a server-side socket. */
export interface Recipient {
  client?: { conn?: EngineConn };
}

/** One broadcast as the in-memory adapter runs it: one encode, then one walk over the recipients. */
export interface BroadcastHooks {
  /** After `_encode`, with the packet and the options every recipient gets (`wsPreEncodedFrame`). */
  encoded(packet: { data?: unknown[]; id?: number }, opts: { volatile?: boolean; wsPreEncodedFrame?: Buffer[] }): void;
  /** Per recipient, before the adapter's own callback; return true when it was delivered here. */
  deliver(socket: Recipient): boolean;
  /** After the walk. */
  done(): void;
}

interface AdapterInternals {
  _encode(packet: unknown, opts: unknown): unknown;
  apply(opts: unknown, callback: (socket: Recipient) => void): void;
  /** Public fields of socket.io-adapter's in-memory `Adapter`: room -> socket ids, and the namespace. */
  rooms?: unknown;
  nsp?: { sockets?: unknown };
}

/** What `apply()` gets from a broadcast: the rooms to reach and those to leave out. */
interface ApplyOptions {
  rooms?: Set<string>;
  except?: Set<string>;
}

/**
 * The recipients of a broadcast to exactly one room with no exceptions (every chat message, edit
 * and presence event): that room's socket ids, each looked up in the namespace. That is what the
 * in-memory adapter's `apply()` does for it, less its per-recipient bookkeeping for several rooms
 * (a Set of the ids already reached, a lookup in the `except` Set, both growing per recipient: about
 * a tenth of a pod's CPU per delivery in a 1000-member room). Undefined for any other broadcast.
 */
function singleRoomIds(adapter: AdapterInternals, opts: ApplyOptions | undefined): { ids: Set<string>; sockets: Map<string, Recipient> } | undefined {
  const rooms = opts?.rooms;
  if (!(rooms instanceof Set) || rooms.size !== 1 || (opts?.except !== undefined && (!(opts.except instanceof Set) || opts.except.size !== 0)))
    return undefined;
  const sockets = adapter.nsp?.sockets;
  if (!(adapter.rooms instanceof Map) || !(sockets instanceof Map)) return undefined;
  const [room] = rooms;
  const ids: unknown = adapter.rooms.get(room);
  return { ids: ids instanceof Set ? (ids as Set<string>) : new Set(), sockets: sockets as Map<string, Recipient> };
}

/**
 * Hooks every broadcast of `adapter`, from this pod or from the bus, once per broadcast.
 *
 * Why not a subclass overriding the public `broadcast()`: the Redis adapters deliver what they
 * read from the bus with `super.broadcast()` (redis-adapter 8.3.0 `onmessage`, socket.io-adapter
 * 2.5.8 `ClusterAdapter.onMessage`), which calls the in-memory adapter's method directly and
 * would bypass an override: every message from another pod would miss it. So this wraps the two
 * steps that method is made of, `_encode` then `apply`, on the one instance. `checkBroadcast()`
 * proves that order on the installed version before this is used, and the pairing is checked per
 * call: an encode arms only the very next `apply` of the same tick, so an `apply` without an
 * encode (fetchSockets, socketsJoin) runs untouched, and an encode left unconsumed expires at the
 * next microtask, before any other broadcast can start.
 */
export function hookBroadcasts(adapter: unknown, hooks: BroadcastHooks): boolean {
  const target = adapter as AdapterInternals;
  // The originals are called with `.call(this, …)` from the wrappers below, never unbound.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const encode = target._encode;
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const apply = target.apply;
  if (typeof encode !== "function" || typeof apply !== "function") return false;
  let armed = false;
  const disarm = () => void (armed = false);
  target._encode = function (this: AdapterInternals, packet, opts) {
    const encoded = encode.call(this, packet, opts);
    hooks.encoded(packet as never, opts ?? {});
    armed = true;
    queueMicrotask(disarm);
    return encoded;
  };
  target.apply = function (this: AdapterInternals, opts, callback) {
    if (!armed) return apply.call(this, opts, callback);
    armed = false;
    const single = singleRoomIds(this, opts as ApplyOptions | undefined);
    if (single) {
      for (const id of single.ids) {
        const socket = single.sockets.get(id);
        if (socket && !hooks.deliver(socket)) callback(socket);
      }
    } else {
      apply.call(this, opts, (socket) => {
        if (!hooks.deliver(socket)) callback(socket);
      });
    }
    hooks.done();
  };
  return true;
}

/**
 * Start-up check: the installed in-memory adapter's `broadcast()` calls `_encode(packet, opts)`,
 * then `apply()`, whose callback hands each socket's client that same `opts` object.
 */
export function checkBroadcast(): boolean {
  const steps: string[] = [];
  let shared: unknown;
  const probe = {
    nsp: { name: "/" },
    _encode(_packet: unknown, opts: unknown) {
      steps.push("encode");
      shared = opts;
      return ['2["probe"]'];
    },
    apply(_opts: unknown, callback: (socket: unknown) => void) {
      steps.push("apply");
      callback({ client: { writeToEngine: (_packets: unknown, opts: unknown) => steps.push(opts === shared ? "write" : "other") } });
    },
  };
  try {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with `.call(probe, …)` below
    const broadcast = Adapter.prototype.broadcast as (this: unknown, packet: unknown, opts: unknown) => void;
    broadcast.call(probe, { type: 2, data: ["probe"] }, { rooms: new Set(), except: new Set(), flags: {} });
  } catch {
    return false;
  }
  return steps.join(",") === "encode,apply,write";
}

/**
 * Makes `socket.join(room)` resolve once `afterJoin()` does: wraps the adapter's public `addAll`
 * on this instance (socket.io 4.8.4 awaits what it returns). `afterJoin` must not reject.
 */
export function wrapAddAll(adapter: unknown, afterJoin: (id: string, rooms: Set<string>) => Promise<void> | undefined): boolean {
  const target = adapter as { addAll?: (id: string, rooms: Set<string>) => Promise<void> | void };
  if (typeof target.addAll !== "function") return false;
  const addAll = target.addAll.bind(target);
  target.addAll = (id, rooms) => {
    void addAll(id, rooms);
    return afterJoin(id, rooms);
  };
  return true;
}
