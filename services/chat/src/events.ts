import { fail, rateLimited, type Ack, type Logger } from "@chat/shared";
import type { ChatSocket, ClientToServer } from "./socket-types.js";

/** A client-to-server event handler: it returns the ack, it never calls it. */
export type Handler = (socket: ChatSocket, payload: unknown) => Promise<Ack> | Ack;

/** The handler of every event a client may send (socket-types.ts), by name. */
export type Handlers = { [Event in keyof ClientToServer]: Handler };

/** Attaches the listeners to one connection. */
export type Binder = (socket: ChatSocket) => void;

/**
 * Builds the listeners for `handlers` once, so that every event gets exactly one well-formed ack,
 * whatever the client sends: a handler that throws acks `internal`, an unknown event acks
 * `unknown_event`, and an event without an ack callback is answered with a `protocol_error` event
 * instead.
 *
 * Why once: Socket.IO calls a listener with the socket as `this`, so the same functions serve every
 * connection. Closures bound per connection cost memory on each of thousands of idle sockets.
 *
 * Why one catch-all listener rather than one `socket.on(event)` per event: an EventEmitter keeps its
 * listeners in a dictionary-mode object, and a dozen event names in it cost about 0.6 KiB on every
 * connection, idle or not. `onAny` sees every event first; a known one is then run exactly as
 * Socket.IO's own dispatch would (on the next tick, and only while the socket is connected).
 */
export interface BinderOptions {
  /** Events one connection may send per second, sustained, whatever they are; 0 or unset: no limit. */
  eventsPerSecond?: number;
  /** Events one connection may send at once (a re-join of all its rooms after a reconnect). @default eventsPerSecond */
  eventsBurst?: number;
  /** Told of each event refused by that limit. */
  onLimited?(): void;
}

/** A token bucket's state, kept on the socket itself (`socket.data`). */
export interface EventBucket {
  eventTokens?: number;
  eventAt?: number;
}

/**
 * Takes one token from a bucket of `burst` tokens refilled at `perSecond`, at time `now` (ms).
 * Returns 0 when the event may go on, else the ms until a token will be there (at least 1).
 *
 * Kept on the socket itself: a refused event costs no Redis work, no promise and no map entry
 * (rate-limiter-flexible's memory limiter would add all three to every event, and a map to clean
 * up). A new bucket starts full.
 */
export function takeToken(bucket: EventBucket, now: number, perSecond: number, burst: number): number {
  const tokens = bucket.eventTokens === undefined ? burst : Math.min(burst, bucket.eventTokens + ((now - bucket.eventAt!) * perSecond) / 1000);
  bucket.eventAt = now;
  if (tokens >= 1) {
    bucket.eventTokens = tokens - 1;
    return 0;
  }
  bucket.eventTokens = tokens;
  return Math.max(1, Math.ceil(((1 - tokens) * 1000) / perSecond));
}

export function createBinder(handlers: Handlers, log: Logger, options: BinderOptions = {}): Binder {
  // Object.keys types its result as string[]; these are exactly the keys of `handlers`.
  const events = Object.keys(handlers) as (keyof ClientToServer)[];

  const perSecond = options.eventsPerSecond ?? 0;
  const burst = Math.max(1, options.eventsBurst ?? perSecond);
  /** Zero when the event may go on, else how long to wait. */
  const limited = (socket: ChatSocket): number => {
    if (perSecond <= 0) return 0;
    const wait = takeToken(socket.data, Date.now(), perSecond, burst);
    if (wait > 0) options.onLimited?.();
    return wait;
  };
  const listeners = events.map((event) => {
    const handler = handlers[event];
    return [
      event,
      function (this: ChatSocket, ...args: unknown[]) {
        const ack = typeof args.at(-1) === "function" ? (args.pop() as (response: Ack) => void) : undefined;
        const wait = limited(this);
        if (wait > 0) return ack?.(rateLimited("events on this connection", wait));
        if (!ack) return tellNoAck(this, event);
        if (args.length !== 1) {
          return ack(fail("bad_request", `${event} takes exactly one payload argument, got ${args.length}`));
        }
        // run() never rejects (a throwing handler acks `internal`); the catch is for ack itself.
        run(handler, this, args[0], log, event)
          .then(ack)
          .catch((err: unknown) => log.error({ sid: this.id, event, err }, "ack failed"));
      },
    ] as const;
  });

  const byEvent = new Map<string, Listener>(listeners);

  function onAny(this: ChatSocket, event: unknown, ...args: unknown[]) {
    const listener = typeof event === "string" ? byEvent.get(event) : undefined;
    if (listener) {
      process.nextTick(dispatch, this, listener, args);
      return;
    }
    const ack = args.at(-1);
    const wait = limited(this);
    if (wait > 0) {
      if (typeof ack === "function") (ack as (response: Ack) => void)(rateLimited("events on this connection", wait));
      return;
    }
    const name = String(event).slice(0, 64);
    log.debug({ sid: this.id, event: name }, "unknown event");
    if (typeof ack === "function") (ack as (response: Ack) => void)(fail("unknown_event", `unknown event ${JSON.stringify(name)}`));
    else tellNoAck(this, name);
  }

  // A client may send an event literally named "error"; without a listener Node's EventEmitter
  // would throw it as an uncaught exception and take the whole process down. socket.io 4.8 adds a
  // no-op listener of its own to every socket; this one is added only where that is missing.
  function onError(this: ChatSocket, err: unknown) {
    log.debug({ sid: this.id, err: err instanceof Error ? err.message : typeof err }, "socket error");
  }

  return (socket) => {
    socket.onAny(onAny);
    if (socket.listenerCount("error") === 0) socket.on("error", onError);
  };
}

type Listener = (this: ChatSocket, ...args: unknown[]) => void;

/** What Socket.IO 4.8's `dispatch()` does with an event once its middlewares passed (there are none). */
function dispatch(socket: ChatSocket, listener: Listener, args: unknown[]): void {
  if (socket.connected) listener.apply(socket, args);
}

function tellNoAck(socket: ChatSocket, event: string): void {
  socket.emit("protocol_error", {
    event,
    error: { code: "bad_request", message: `${event} needs an ack callback` },
  });
}

async function run(handler: Handler, socket: ChatSocket, payload: unknown, log: Logger, event: string): Promise<Ack> {
  try {
    return await handler(socket, payload);
  } catch (err) {
    log.error({ sid: socket.id, event, err }, "handler failed");
    return fail("internal", "internal error; the request was not processed");
  }
}
