import type { Cluster, Redis } from "ioredis";
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

export interface RateLimitOptions {
  /** Prefix of the limiter's Redis keys (they expire on their own). */
  keyPrefix: string;
  /** Requests allowed per `durationSeconds`; 0 turns the limit off. */
  points: number;
  durationSeconds: number;
  /** Extra requests allowed over `burst.durationSeconds` once `points` are spent. */
  burst?: { points: number; durationSeconds: number };
  /**
   * Once a key is over its limit, refuse it from memory until its window ends, without asking
   * Redis again: a flood of refused requests then costs Redis nothing. Not with `burst`.
   * @default false
   */
  blockInMemory?: boolean;
}

export type RateLimitResult = { ok: true } | { ok: false; retryAfterMs: number };

/** A limit shared by every pod through Redis; in memory on a single node. */
export interface RateLimit {
  consume(key: string): Promise<RateLimitResult>;
  /** What it was made with: a Redis script can count the same keys the same way (room-log.ts). */
  readonly options: RateLimitOptions;
}

export { rateLimitKeys } from "./keys.js";

/**
 * rate-limiter-flexible over Redis, so the limit is global across pods, with an in-memory
 * insurance limiter: while Redis is unreachable each pod keeps enforcing the same limit locally
 * instead of letting everything through or refusing everything. Undefined when turned off.
 */
export function createRateLimit(redis: Redis | Cluster | undefined, options: RateLimitOptions): RateLimit | undefined {
  if (options.points <= 0) return undefined;
  const blockInMemory = options.blockInMemory && !options.burst;
  const limiter = (points: number, duration: number, keyPrefix: string): RateLimiterAbstract => {
    const memory = new RateLimiterMemory({ points, duration, keyPrefix });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      points,
      duration,
      keyPrefix,
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
      // Blocked for the rest of the window (rate-limiter-flexible's msBeforeNext).
      ...(blockInMemory ? { inMemoryBlockOnConsumed: points + 1 } : {}),
    });
  };
  const base = limiter(options.points, options.durationSeconds, options.keyPrefix);
  const burst =
    options.burst && options.burst.points > 0 ? limiter(options.burst.points, options.burst.durationSeconds, `${options.keyPrefix}:burst`) : undefined;
  const consumer = burst ? new BurstyRateLimiter(base, burst) : base;

  return {
    options,
    async consume(key) {
      try {
        await consumer.consume(key);
        return { ok: true };
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) return { ok: false, retryAfterMs: Math.max(1, Math.ceil(rejection.msBeforeNext)) };
        // Neither Redis nor the insurance limiter answered: let the request through rather than
        // refuse everyone because of a limiter fault.
        return { ok: true };
      }
    },
  };
}
