import type { Redis } from "ioredis";

// Private parts of ioredis 5.11.1, read from that version (see ./index.ts).

/**
 * The subscriber connection's subscriptions as Redis acknowledged them: ioredis keeps them in the
 * private `condition.subscriber` (a SubscriptionSet, or `false` before the first subscribe).
 * Undefined when that field no longer looks like it.
 */
export function redisSubscriptions(sub: Redis): string[] | undefined {
  const condition = (sub as unknown as { condition?: { subscriber?: false | { channels?(kind: string): string[] } } }).condition;
  if (!condition) return [];
  const set = condition.subscriber;
  if (!set) return [];
  if (typeof set.channels !== "function") return undefined;
  return (["ssubscribe", "subscribe", "psubscribe"] as const).flatMap((kind) => set.channels!(kind));
}

/**
 * Replaces the public `ssubscribe`/`sunsubscribe` methods on this one client so that each reply's
 * rejection goes to `onDropped` instead of surfacing unhandled (the adapter ignores the promise).
 */
export function quietCommands(sub: Redis, names: readonly ("ssubscribe" | "sunsubscribe")[], onDropped: (command: string, err: Error) => void): void {
  for (const name of names) {
    const original = sub[name].bind(sub) as (...args: unknown[]) => Promise<unknown>;
    const quiet = (...args: unknown[]) => {
      const reply = original(...args);
      reply.catch((err: Error) => onDropped(name, err));
      return reply;
    };
    (sub as unknown as Record<string, unknown>)[name] = quiet;
  }
}
