import type { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

export interface StorageQuotaOptions {
  /**
   * Bytes one user may add to room logs per window, across every pod and room. 0: no limit.
   * @default 10_000_000
   */
  userBytes: number;
  /**
   * Bytes one room's log may take in per window, whoever sends them. 0: no limit.
   * @default 50_000_000
   */
  roomBytes: number;
  /**
   * Bytes every room log together may take in per window: the deployment's budget. 0: no limit.
   * @default 1_000_000_000
   */
  totalBytes: number;
  /**
   * The window of all three, in seconds.
   * @default 3600
   */
  windowSeconds: number;
  /**
   * Prefix of the quota's Redis keys (they expire with their window).
   * @default "chat:quota"
   */
  keyPrefix?: string;
}

/** Which quota refused: the sender's own, the room's, or the whole deployment's. */
export type QuotaScope = "user" | "room" | "total";

export type QuotaResult = { ok: true } | { ok: false; scope: QuotaScope; limitBytes: number; retryAfterMs: number };

/** Bytes stored in room logs, counted per user, per room and in total. */
export interface StorageQuota {
  /** Charges `bytes` to `user`, `room` and the total, or to none of them when one is spent. */
  consume(user: string, room: string, bytes: number): Promise<QuotaResult>;
  /** Gives back what `consume` charged, for an append that stored nothing (a refusal, a retry). */
  refund(user: string, room: string, bytes: number): void;
}

/**
 * rate-limiter-flexible with points = bytes: a fixed window per key in Redis, so the quotas hold
 * across pods, with an in-memory insurance limiter while Redis is away (as `createRateLimit`).
 * The three are charged in parallel, one round trip; when one refuses, what the others took is
 * given back, so a user refused by their own quota never spends the room's or everyone's.
 * Undefined when all three are off.
 */
export function createStorageQuota(redis: Redis | undefined, options: StorageQuotaOptions): StorageQuota | undefined {
  const { windowSeconds: duration, keyPrefix = "chat:quota" } = options;
  const make = (points: number, scope: QuotaScope): [QuotaScope, number, RateLimiterAbstract] | undefined => {
    if (points <= 0) return undefined;
    const prefix = `${keyPrefix}:${scope}`;
    const memory = new RateLimiterMemory({ points, duration, keyPrefix: prefix });
    const limiter = redis
      ? new RateLimiterRedis({ storeClient: redis, points, duration, keyPrefix: prefix, rejectIfRedisNotReady: true, insuranceLimiter: memory })
      : memory;
    return [scope, points, limiter];
  };
  const quotas = [make(options.userBytes, "user"), make(options.roomBytes, "room"), make(options.totalBytes, "total")].filter(
    (q): q is [QuotaScope, number, RateLimiterAbstract] => q !== undefined,
  );
  if (quotas.length === 0) return undefined;
  const keyOf = (scope: QuotaScope, user: string, room: string) => (scope === "user" ? user : scope === "room" ? room : "all");
  const refund = (user: string, room: string, bytes: number, only?: Set<QuotaScope>) => {
    for (const [scope, , limiter] of quotas) {
      // Best effort: a refund lost to a Redis hiccup only makes the window a little stricter.
      if (!only || only.has(scope)) limiter.reward(keyOf(scope, user, room), bytes).catch(() => undefined);
    }
  };

  return {
    refund: (user, room, bytes) => refund(user, room, bytes),
    async consume(user, room, bytes) {
      const results = await Promise.all(
        quotas.map(async ([scope, limitBytes, limiter]) => {
          try {
            await limiter.consume(keyOf(scope, user, room), bytes);
            return { scope, ok: true as const };
          } catch (rejection) {
            // Neither Redis nor the insurance limiter answered: let it through, as createRateLimit does.
            if (!(rejection instanceof RateLimiterRes)) return { scope, ok: true as const };
            return { scope, ok: false as const, limitBytes, retryAfterMs: Math.max(1, Math.ceil(rejection.msBeforeNext)) };
          }
        }),
      );
      const refused = results.find((r) => !r.ok);
      if (!refused || refused.ok) return { ok: true };
      refund(user, room, bytes, new Set(results.filter((r) => r.ok).map((r) => r.scope)));
      return { ok: false, scope: refused.scope, limitBytes: refused.limitBytes, retryAfterMs: refused.retryAfterMs };
    },
  };
}
