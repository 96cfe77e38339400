import type { Redis } from "ioredis";
import { isRedisCluster, type RedisClient } from "@chat/shared";

// Private parts of ioredis 5.11.1, read from that version (see ./index.ts).

type SubscriptionSet = false | { channels?(kind: string): string[] };

/** The subscriptions one connection has, as Redis acknowledged them; undefined when the field no longer looks like it. */
function subscriptionsOf(connection: Redis): string[] | undefined {
  // `condition` is set when the connection first connects; before that it holds nothing.
  const condition = (connection as unknown as { condition?: { subscriber?: SubscriptionSet } }).condition;
  if (!condition) return [];
  const set = condition.subscriber;
  if (!set) return [];
  if (typeof set.channels !== "function") return undefined;
  return (["ssubscribe", "subscribe", "psubscribe"] as const).flatMap((kind) => set.channels!(kind));
}

/**
 * The connections a Cluster made with `shardedSubscribers` subscribes on, one per master: its
 * private `shardedSubscribers` (a ClusterSubscriberGroup) holds a `shardedSubscribers` map of
 * ShardedSubscriber, whose `getInstance()` is the connection. Undefined when that shape is gone.
 */
export function shardSubscribers(sub: RedisClient): Redis[] | undefined {
  if (!isRedisCluster(sub)) return [sub];
  const group = (sub as unknown as { shardedSubscribers?: { shardedSubscribers?: unknown } }).shardedSubscribers;
  const map = group?.shardedSubscribers;
  if (!(map instanceof Map)) return undefined;
  const connections: Redis[] = [];
  for (const subscriber of map.values() as Iterable<{ getInstance?: () => Redis | null }>) {
    if (typeof subscriber.getInstance !== "function") return undefined;
    const connection = subscriber.getInstance();
    if (connection) connections.push(connection);
  }
  return connections;
}

/**
 * The subscriber's subscriptions as Redis acknowledged them: ioredis keeps them in the private
 * `condition.subscriber` (a SubscriptionSet, or `false` before the first subscribe) of the
 * connection, or, on a Redis Cluster, of each master's subscriber connection. Undefined when
 * those fields no longer look like it.
 */
export function redisSubscriptions(sub: RedisClient): string[] | undefined {
  const connections = shardSubscribers(sub);
  if (!connections) return undefined;
  const channels: string[] = [];
  for (const connection of connections) {
    const mine = subscriptionsOf(connection);
    if (!mine) return undefined;
    channels.push(...mine);
  }
  return channels;
}

/**
 * Replaces the public `ssubscribe`/`sunsubscribe` methods on this one client so that each reply's
 * rejection goes to `onDropped` instead of surfacing unhandled (the adapter ignores the promise),
 * and `onSent` sees each command's reply promise.
 */
export function quietCommands(
  sub: RedisClient,
  names: readonly ("ssubscribe" | "sunsubscribe")[],
  onDropped: (command: string, err: Error) => void,
  onSent: (command: string, args: unknown[], reply: Promise<unknown>) => void = () => undefined,
): void {
  for (const name of names) {
    const original = (sub[name] as (...args: unknown[]) => Promise<unknown>).bind(sub);
    const quiet = (...args: unknown[]) => {
      const reply = original(...args);
      reply.catch((err: Error) => onDropped(name, err));
      onSent(name, args, reply);
      return reply;
    };
    (sub as unknown as Record<string, unknown>)[name] = quiet;
  }
}
