import { Emitter } from "@socket.io/redis-emitter";
import { encode } from "notepack.io";
import { BUS_KEY } from "./protocol.js";

/**
 * How the pods exchange room events over Redis:
 * - `classic`: `PUBLISH` on channels every pod pattern-subscribes to, so every pod reads every
 *   room's traffic (`@socket.io/redis-adapter`'s `createAdapter`);
 * - `sharded`: Redis 7 sharded pub/sub, one channel per room, to which a pod subscribes while it
 *   has a member there (`createShardedAdapter`, `subscriptionMode: "dynamic"`).
 * The chat pods and the notifier must use the same one, or their messages miss each other.
 */
export type BusMode = "classic" | "sharded";
export const BUS_MODES = ["classic", "sharded"] as const satisfies readonly BusMode[];

/** The channel every pod always listens to (broadcasts, disconnects, requests): `socket.io#/#`. */
export const BUS_MAIN_CHANNEL = `${BUS_KEY}#/#`;

/** A room's own channel, in sharded mode: `socket.io#/#<room>#`. */
export const busRoomChannel = (room: string): string => `${BUS_MAIN_CHANNEL}${room}#`;

/**
 * The channel a sharded broadcast to `room` alone travels on. The adapter takes any 20-character
 * room for a socket id (a private room, never given a channel of its own) and sends it on the
 * main channel, so the emitter must do the same.
 */
export const shardedChannelOf = (room: string): string => (room.length === 20 ? BUS_MAIN_CHANNEL : busRoomChannel(room));

/** `to(room).emit()`, `emit()` and `disconnectSockets()`: what services send to the chat's sockets. */
export interface BusBroadcast {
  to(room: string | string[]): BusBroadcast;
  in(room: string | string[]): BusBroadcast;
  except(room: string | string[]): BusBroadcast;
  /** Emits to every socket of the targeted rooms (every socket without a room). Always true. */
  emit(event: string, ...args: unknown[]): true;
  /** Disconnects the targeted sockets; `close` also closes their underlying connection. */
  disconnectSockets(close?: boolean): void;
}

/** The part of a Redis client an emitter publishes with (ioredis `Redis` and `Cluster` both fit). */
export interface BusPublisher {
  publish(channel: string, message: Buffer): unknown;
  spublish(channel: string, message: Buffer): unknown;
}

export interface BusEmitterOptions {
  /** Called when Redis refuses a sharded publish (the official emitter leaves that unhandled). */
  onError?: (err: Error) => void;
}

/**
 * An emitter for processes without sockets (the notifier, the room log) that reaches the chat
 * pods in either mode: the official `@socket.io/redis-emitter` in classic mode, and in sharded
 * mode a small one of our own, because that library (5.1) has no sharded mode. Ours sends the
 * messages `ShardedRedisAdapter` decodes (socket.io-adapter's ClusterAdapter format, in msgpack)
 * on the channel that adapter would use itself.
 */
export function createBusEmitter(redis: BusPublisher, mode: BusMode, { onError = () => undefined }: BusEmitterOptions = {}): BusBroadcast {
  if (mode === "classic") return new Emitter(redis, { key: BUS_KEY });
  const publish = (channel: string, message: Buffer) => {
    try {
      void Promise.resolve(redis.spublish(channel, message)).catch(onError);
    } catch (err) {
      onError(err as Error);
    }
  };
  return new ShardedBroadcast(publish, [], [], {});
}

/** socket.io-adapter's `MessageType` values this emitter sends. */
const BROADCAST = 3;
const DISCONNECT_SOCKETS = 6;
/** socket.io-parser's `PacketType.EVENT`. */
const EVENT = 2;
/** The `uid` adapters give messages that no pod sent (they ignore only their own). */
const EMITTER_UID = "emitter";
const RESERVED_EVENTS = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);

class ShardedBroadcast implements BusBroadcast {
  constructor(
    private readonly publish: (channel: string, message: Buffer) => void,
    private readonly rooms: string[],
    private readonly exceptRooms: string[],
    private readonly flags: Record<string, boolean>,
  ) {}

  to(room: string | string[]): BusBroadcast {
    const rooms = [...new Set([...this.rooms, ...[room].flat()])];
    return new ShardedBroadcast(this.publish, rooms, this.exceptRooms, this.flags);
  }

  in(room: string | string[]): BusBroadcast {
    return this.to(room);
  }

  except(room: string | string[]): BusBroadcast {
    const except = [...new Set([...this.exceptRooms, ...[room].flat()])];
    return new ShardedBroadcast(this.publish, this.rooms, except, this.flags);
  }

  emit(event: string, ...args: unknown[]): true {
    if (RESERVED_EVENTS.has(event)) throw new Error(`"${event}" is a reserved event name`);
    // The packet goes last: its payload is the only part a client's input can reach.
    const data = { opts: this.opts(), packet: { type: EVENT, data: [event, ...args], nsp: "/" } };
    this.publish(this.channel(), encode({ uid: EMITTER_UID, nsp: "/", type: BROADCAST, data }) as Buffer);
    return true;
  }

  /**
   * The adapter itself sends a disconnect on the main channel, but it acts on one from any
   * channel it listens to; one room's channel reaches only the pods with sockets there, and keeps
   * it in order behind an `emit` to the same room (a `session_ended` before the disconnect).
   */
  disconnectSockets(close = false): void {
    const data = { opts: this.opts(), close };
    this.publish(this.channel(), encode({ uid: EMITTER_UID, nsp: "/", type: DISCONNECT_SOCKETS, data }) as Buffer);
  }

  /**
   * Same rule as ShardedRedisAdapter.computeChannel: one room (not a socket id) gets its room's
   * channel; everything else goes where every pod listens.
   */
  private channel(): string {
    const [only] = this.rooms;
    return this.rooms.length === 1 && only !== undefined ? shardedChannelOf(only) : BUS_MAIN_CHANNEL;
  }

  private opts() {
    return { rooms: this.rooms, except: this.exceptRooms, flags: this.flags };
  }
}
