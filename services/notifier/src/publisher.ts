import type { Redis, Result } from "ioredis";
import { NOTIFICATION_EVENT, createBusEmitter, encodeOrRefuse, userRoom, type BusMode, type RoomLog } from "@chat/shared";
import { toNotification, type NotifierEvent } from "./events.js";

declare module "ioredis" {
  interface RedisCommander<Context> {
    notifierPublish(key: string, ttlSeconds: number, channel: string, message: Buffer | string, command: string): Result<number, Context>;
  }
}

/**
 * Dedupe and publish in one atomic step. "SET NX, then publish" loses the event if the process
 * dies in between (the retry finds the id taken); "publish, then SET" delivers it twice. Inside
 * one script Redis runs both or neither, so an id reaches clients at most once and a retry after
 * any failure is always safe.
 */
const DEDUPE_PUBLISH = `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call(ARGV[4], ARGV[2], ARGV[3])
  return 1
end
return 0
`;

/** Every event id ever published lives under this prefix for the dedupe window. */
export const DEDUPE_PREFIX = "notifier:seen:";

export interface Publisher {
  /**
   * Publishes `event` unless its id was published within the window: true when it went out now,
   * false for a duplicate. Rejects when Redis could not run it; retrying is then safe.
   */
  publish(event: NotifierEvent): Promise<boolean>;
  /**
   * The same for many events in one round trip; each result is the boolean or the error. An
   * `UnencodableError` is the event's own fault and fails again on every retry; any other error
   * is Redis's.
   */
  publishMany(events: NotifierEvent[]): Promise<(boolean | Error)[]>;
}

interface Captured {
  channel: string;
  message: Buffer | string;
}

/**
 * The bus emitter does the channel naming and msgpack encoding the chat pods' adapter expects, in
 * either bus mode; this stand-in for its Redis client only records what it would have published,
 * so the script can publish it atomically with the dedupe key. The emitter publishes
 * synchronously inside `emit`, which is what makes a single slot enough.
 */
function createEncoder(mode: BusMode): (event: NotifierEvent, ts: number) => Captured {
  let captured: Captured | undefined;
  const record = (channel: string, message: Buffer) => {
    captured = { channel, message };
  };
  const emitter = createBusEmitter({ publish: record, spublish: record }, mode);
  return (event, ts) => {
    captured = undefined;
    const { target } = event;
    const payload = toNotification(event, ts);
    if (target.kind === "room") emitter.to(target.room).emit(NOTIFICATION_EVENT, payload);
    else if (target.kind === "user") emitter.to(userRoom(target.user)).emit(NOTIFICATION_EVENT, payload);
    else emitter.emit(NOTIFICATION_EVENT, payload);
    if (!captured) throw new Error("the Socket.IO emitter published nothing");
    return captured;
  };
}

export interface PublisherOptions {
  dedupeWindowSeconds: number;
  /** The rooms' logs, shared with the chat pods: room events are stored there like messages. */
  roomLog: RoomLog;
  /** The deployment's bus mode (`resolveBusMode`). @default "classic" */
  busMode?: BusMode;
}

export function createPublisher(redis: Redis, { dedupeWindowSeconds, roomLog, busMode = "classic" }: PublisherOptions): Publisher {
  redis.defineCommand("notifierPublish", { numberOfKeys: 1, lua: DEDUPE_PUBLISH });
  const encode = createEncoder(busMode);
  const publishCommand = busMode === "sharded" ? "SPUBLISH" : "PUBLISH";

  /**
   * A room event is appended to the room's log, which dedupes and publishes it in the same
   * script: it gets a log id, and a client that reconnects catches up on it like on a message.
   * `id` is that log id, as for messages; the event's own id is `eventId` (and `logId`, the
   * deprecated alias of `id`, keeps older clients working).
   */
  function publishToRoom(event: NotifierEvent, room: string): Promise<boolean | Error> {
    const body = { eventId: event.id, room, type: event.type, data: event.data };
    const dedupe = { scope: `n:${event.id}`, ttlSeconds: dedupeWindowSeconds };
    return roomLog.append(room, NOTIFICATION_EVENT, body, { dedupe, logIdAlias: true }).then(
      ({ duplicate }) => !duplicate,
      (err: Error) => err,
    );
  }

  async function publishMany(events: NotifierEvent[]): Promise<(boolean | Error)[]> {
    if (events.length === 0) return [];
    // Commands go out in order on one connection, so events keep the order they were given in,
    // across targets too: a room event (its own script) flushes the user and broadcast events
    // queued before it, so a stream's entries reach a client in stream order.
    const results: Promise<boolean | Error>[] = [];
    const ts = Date.now();
    let pipeline = redis.pipeline();
    let piped: number[] = [];
    const flush = () => {
      if (!piped.length) return;
      const indexes = piped;
      const replies = pipeline.exec().catch((err: Error) => indexes.map((): [Error, null] => [err, null]));
      for (const [k, i] of indexes.entries()) {
        results[i] = replies.then((all) => {
          const [err, value] = all?.[k] ?? [new Error("no reply from Redis"), undefined];
          return err ?? value === 1;
        });
      }
      pipeline = redis.pipeline();
      piped = [];
    };
    for (const [i, event] of events.entries()) {
      if (event.target.kind === "room") {
        flush();
        results[i] = publishToRoom(event, event.target.room);
        continue;
      }
      let encoded: Captured;
      try {
        encoded = encodeOrRefuse(() => encode(event, ts));
      } catch (err) {
        results[i] = Promise.resolve(err as Error);
        continue;
      }
      const { channel, message } = encoded;
      pipeline.notifierPublish(DEDUPE_PREFIX + event.id, dedupeWindowSeconds, channel, message, publishCommand);
      piped.push(i);
    }
    flush();
    return Promise.all(results);
  }

  return {
    publishMany,
    async publish(event) {
      const [result] = await publishMany([event]);
      if (result instanceof Error) throw result;
      return result!;
    },
  };
}
