import { Emitter } from "@socket.io/redis-emitter";
import type { Redis, Result } from "ioredis";
import { BUS_KEY, NOTIFICATION_EVENT, userRoom } from "@chat/shared";
import { toNotification, type NotifierEvent } from "./events.js";

declare module "ioredis" {
  interface RedisCommander<Context> {
    notifierPublish(key: string, ttlSeconds: number, channel: string, message: Buffer | string): Result<number, Context>;
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
  redis.call('PUBLISH', ARGV[2], ARGV[3])
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
  /** The same for many events in one round trip; each result is the boolean or the error. */
  publishMany(events: NotifierEvent[]): Promise<(boolean | Error)[]>;
}

interface Captured {
  channel: string;
  message: Buffer | string;
}

/**
 * The emitter does the channel naming and msgpack encoding the chat pods' adapter expects; this
 * stand-in for its Redis client only records what it would have published, so the script can
 * publish it atomically with the dedupe key. The emitter calls `publish` synchronously inside
 * `emit`, which is what makes a single slot enough.
 */
function createEncoder(): (event: NotifierEvent, ts: number) => Captured {
  let captured: Captured | undefined;
  const emitter = new Emitter(
    {
      publish(channel: string, message: Buffer | string) {
        captured = { channel, message };
      },
    },
    { key: BUS_KEY },
  );
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

export function createPublisher(redis: Redis, { dedupeWindowSeconds }: { dedupeWindowSeconds: number }): Publisher {
  redis.defineCommand("notifierPublish", { numberOfKeys: 1, lua: DEDUPE_PUBLISH });
  const encode = createEncoder();

  async function publishMany(events: NotifierEvent[]): Promise<(boolean | Error)[]> {
    if (events.length === 0) return [];
    const pipeline = redis.pipeline();
    const ts = Date.now();
    for (const event of events) {
      const { channel, message } = encode(event, ts);
      pipeline.notifierPublish(DEDUPE_PREFIX + event.id, dedupeWindowSeconds, channel, message);
    }
    const results = await pipeline.exec();
    return events.map((_, i) => {
      const [err, value] = results?.[i] ?? [new Error("no reply from Redis"), undefined];
      return err ?? value === 1;
    });
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
