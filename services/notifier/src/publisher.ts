import type { ChainableCommander, Cluster, Redis } from "ioredis";
import {
  NOTIFICATION_EVENT,
  busPublishCommand,
  encodeBroadcast,
  encodeOrRefuse,
  luaScript,
  notifierDedupeKey,
  masterOfKey,
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

export function createPublisher(redis: Redis | Cluster, { dedupeWindowSeconds, roomLog, busMode = "classic" }: PublisherOptions): Publisher {
  const publishCommand = busPublishCommand(busMode);
  const cluster = redis.isCluster ? (redis as Cluster) : undefined;
  // On a cluster, SPUBLISH from a script needs the channel in the slot of the script's key.
  const sameSlot = cluster !== undefined && busMode === "sharded";

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

  /** The script's keys and arguments for a user or broadcast event, or the encoder's refusal. */
  function scriptArgs(event: NotifierEvent, ts: number): (string | Buffer | number)[] | Error {
    try {
      const { channel, bytes } = encodeOrRefuse(() => encode(busMode, event, ts));
      return [notifierDedupeKey(event.id, sameSlot ? channel : undefined), dedupeWindowSeconds, channel, bytes, publishCommand];
    } catch (err) {
      return err as Error;
    }
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
        void batch.flush(results);
        batch = createBatch(redis);
        results[i] = publishToRoom(event, event.target.room);
        continue;
      }
      const args = scriptArgs(event, ts);
      if (args instanceof Error) results[i] = Promise.resolve(args);
      else batch.add(i, ...args);
    }
    void batch.flush(results);
    return Promise.all(results);
  }

  /**
   * `publishMany` on a cluster. The targets' slots live on different masters, reached on different
   * connections: a pipeline may hold one master's commands only, and two masters' publishes could
   * reach a pod in either order. So events go out in runs: consecutive user and broadcast events
   * whose keys live on one master share a pipeline, and a run (or a room event) is sent only once
   * the one before it is answered. That keeps each target's order, and the order across targets in
   * all but a race: two masters reach a pod over two connections, and nothing orders their bytes there.
   */
  async function publishManyOnCluster(events: NotifierEvent[]): Promise<(boolean | Error)[]> {
    const results: Promise<boolean | Error>[] = [];
    const ts = Date.now();
    let batch = createBatch(redis);
    let master: string | undefined;
    for (const [i, event] of events.entries()) {
      if (event.target.kind === "room") {
        await batch.flush(results);
        batch = createBatch(redis);
        master = undefined;
        results[i] = publishToRoom(event, event.target.room);
        await results[i];
        continue;
      }
      const args = scriptArgs(event, ts);
      if (args instanceof Error) {
        results[i] = Promise.resolve(args);
        continue;
      }
      const owner = masterOfKey(cluster!, args[0] as string);
      if (owner === undefined || owner !== master) {
        await batch.flush(results);
        batch = createBatch(redis);
        master = owner;
      }
      batch.add(i, ...args);
    }
    await batch.flush(results);
    return Promise.all(results);
  }

  const publishAll = cluster ? publishManyOnCluster : publishMany;
  return {
    publishMany: (events) => publishAll(events),
    async publish(event) {
      const [result] = await publishAll([event]);
      if (result instanceof Error) throw result;
      return result!;
    },
  };
}

/**
 * User and broadcast events queued on one pipeline: each is a run of the dedupe-and-publish
 * script, behind a SCRIPT LOAD so that a Redis that lost its scripts (a restart) still runs them.
 */
function createBatch(redis: Redis | Cluster) {
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
    /** Sends what was queued; each event's result (true, false or the error) lands at its index. Resolves once answered. */
    async flush(results: Promise<boolean | Error>[]): Promise<void> {
      if (!pipeline) return;
      const replies = pipeline.exec().catch((err: Error) => [[err, null]] as [Error, null][]);
      for (const [k, i] of indexes.entries()) {
        results[i] = replies.then((all) => {
          const [loadErr] = all?.[0] ?? [];
          const [err, value] = all?.[k + 1] ?? [loadErr ?? new Error("no reply from Redis"), undefined];
          return err ?? value === 1;
        });
      }
      await replies;
    },
  };
}
