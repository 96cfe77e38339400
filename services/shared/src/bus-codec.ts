import { createBusEmitter, type BusBroadcast, type BusMode } from "./bus.js";

/** One bus message, encoded as the chat pods' adapter decodes it, and the channel it travels on. */
export interface EncodedBroadcast {
  channel: string;
  bytes: Buffer;
}

/**
 * The Redis command a bus message is sent with in `mode`. Scripts and transactions that publish
 * along with other writes (the room log, the notifier, a revocation) send it themselves.
 */
export const busPublishCommand = (mode: BusMode): "PUBLISH" | "SPUBLISH" => (mode === "sharded" ? "SPUBLISH" : "PUBLISH");

/*
 * The bus emitter does the channel naming and the msgpack encoding the chat pods' adapter expects,
 * in either mode. These emitters get a stand-in for a Redis client that only records what they
 * would have published, so that a caller can send it in a script or a MULTI with its other writes
 * (atomically, which the emitter's own fire-and-forget publish cannot be). The emitter publishes
 * synchronously inside `emit`, which is what makes a single slot enough.
 */
let captured: EncodedBroadcast | undefined;
// The classic emitter sends its requests (a disconnect) as JSON text: the same bytes as a Buffer.
const record = (channel: string, bytes: Buffer | string) => void (captured = { channel, bytes: typeof bytes === "string" ? Buffer.from(bytes) : bytes });
const emitters: Record<BusMode, BusBroadcast> = {
  classic: createBusEmitter({ publish: record, spublish: record }, "classic"),
  sharded: createBusEmitter({ publish: record, spublish: record }, "sharded"),
};

function capture(mode: BusMode, send: (emitter: BusBroadcast) => void): EncodedBroadcast {
  captured = undefined;
  send(emitters[mode]);
  const message = captured as EncodedBroadcast | undefined;
  captured = undefined;
  if (!message) throw new Error("the bus emitter published nothing");
  return message;
}

/**
 * What `emitter.to(target).emit(event, payload)` would publish in `mode`; without a target, what
 * `emitter.emit(event, payload)` would (every socket). Throws what the encoder throws on a payload
 * it cannot encode (see `encodeOrRefuse`).
 */
export function encodeBroadcast(mode: BusMode, target: string | undefined, event: string, payload: unknown): EncodedBroadcast {
  return capture(mode, (emitter) => (target === undefined ? emitter : emitter.to(target)).emit(event, payload));
}

/** What `emitter.in(target).disconnectSockets()` would publish in `mode`. */
export function encodeDisconnect(mode: BusMode, target: string): EncodedBroadcast {
  return capture(mode, (emitter) => emitter.in(target).disconnectSockets());
}
