import type { ChainableCommander, Redis } from "ioredis";
import {
  NOTIFICATION_EVENT,
  NOTIFIER_DEDUPE_PREFIX,
  busPublishCommand,
  encodeBroadcast,
  encodeOrRefuse,
  luaScript,
  userRoom,
  type BusMode,
  type EncodedBroadcast,
  type RoomLog,
} from "@chat/shared";
import { toNotification, type NotifierEvent } from "./events.js";

/**
 * Dedupe and publish in one atomic step. "SET NX, then publish" loses the event if the process
 * dies in between (the retry finds the id taken); "publish, then SET" delivers it twice. Inside
 * one script Redis runs both or neither, so an id reaches clients at most once and a retry after
 * any failure is always safe.
 */
const dedupePublish = luaScript<number>(
  `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call(ARGV[4], ARGV[2], ARGV[3])
  return 1
end
return 0
`,
  1,
);

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

/**
 * A user or broadcast event as the bus carries it (the script publishes it atomically with the
 * dedupe key). Room events go through the room log instead.
 */
function encode(mode: BusMode, event: NotifierEvent, ts: number): EncodedBroadcast {
  const { target } = event;
  const room = target.kind === "room" ? target.room : target.kind === "user" ? userRoom(target.user) : undefined;
  return encodeBroadcast(mode, room, NOTIFICATION_EVENT, toNotification(event, ts));
}

export interface PublisherOptions {
  dedupeWindowSeconds: number;
  /** The rooms' logs, shared with the chat pods: room events are stored there like messages. */
  roomLog: RoomLog;
  /** The deployment's bus mode (`resolveBusMode`). @default "classic" */
  busMode?: BusMode;
}

export function createPublisher(redis: Redis, { dedupeWindowSeconds, roomLog, busMode = "classic" }: PublisherOptions): Publisher {
  const publishCommand = busPublishCommand(busMode);

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
    let batch = createBatch(redis);
    for (const [i, event] of events.entries()) {
      if (event.target.kind === "room") {
        batch.flush(results);
        batch = createBatch(redis);
        results[i] = publishToRoom(event, event.target.room);
        continue;
      }
      let encoded: EncodedBroadcast;
      try {
        encoded = encodeOrRefuse(() => encode(busMode, event, ts));
      } catch (err) {
        results[i] = Promise.resolve(err as Error);
        continue;
      }
      batch.add(i, NOTIFIER_DEDUPE_PREFIX + event.id, dedupeWindowSeconds, encoded.channel, encoded.bytes, publishCommand);
    }
    batch.flush(results);
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

/**
 * User and broadcast events queued on one pipeline: each is a run of the dedupe-and-publish
 * script, behind a SCRIPT LOAD so that a Redis that lost its scripts (a restart) still runs them.
 */
function createBatch(redis: Redis) {
  let pipeline: ChainableCommander | undefined;
  const indexes: number[] = [];
  return {
    /** Queues the event at `index` of the caller's list. */
    add(index: number, ...keysAndArgs: (string | number | Buffer)[]) {
      if (!pipeline) {
        pipeline = redis.pipeline();
        dedupePublish.load(pipeline);
      }
      dedupePublish.queue(pipeline, ...keysAndArgs);
      indexes.push(index);
    },
    /** Sends what was queued; each event's result (true, false or the error) lands at its index. */
    flush(results: Promise<boolean | Error>[]) {
      if (!pipeline) return;
      const replies = pipeline.exec().catch((err: Error) => [[err, null]] as [Error, null][]);
      for (const [k, i] of indexes.entries()) {
        results[i] = replies.then((all) => {
          const [loadErr] = all?.[0] ?? [];
          const [err, value] = all?.[k + 1] ?? [loadErr ?? new Error("no reply from Redis"), undefined];
          return err ?? value === 1;
        });
      }
    },
  };
}
