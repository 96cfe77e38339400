import type { Cluster, Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { LIMIT_PREFIXES } from "./keys.js";

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

/**
 * One append's charge, for the room log to make (room-log-append.ts): on one Redis server its
 * script counts `bytes` against `keys` in the same step as it stores them, then hands the counts
 * to `settle`; where it cannot (a Redis Cluster, whose quota keys live in other slots than the
 * room's; the memory log) it calls `charge` once the append stored something.
 */
export interface QuotaCharge {
  /** The Redis keys of the quotas in force, named as rate-limiter-flexible names them. */
  keys: string[];
  bytes: number;
  windowSeconds: number;
  /** What the script counted, per key in order: the bytes used in its window and the ms left of it. */
  settle(counted: number[]): void;
  /** The same charge made by rate-limiter-flexible, one command per quota. */
  charge(): Promise<void>;
}

/** Bytes stored in room logs, counted per user, per room and in total. */
export interface StorageQuota {
  /** Whether `user` may store in `room` now: answered from this pod's memory, no round trip. */
  check(user: string, room: string): QuotaResult;
  /** Charges what an append stored; a quota it spends refuses the next appends until its window ends. */
  charge(user: string, room: string, bytes: number): Promise<void>;
  /** The charge of an append of `bytes` by `user` to `room`, for the room log to make with it (`QuotaCharge`). */
  prepare(user: string, room: string, bytes: number): QuotaCharge;
}

/** Spent quotas this pod remembers at most; expired ones go first. */
const MAX_SPENT = 10_000;

/**
 * rate-limiter-flexible with points = bytes: a fixed window per key in Redis, so the quotas hold
 * across pods, with an in-memory insurance limiter while Redis is away (as `createRateLimit`).
 *
 * What an append stored is charged after it, so that a refused or rate-limited message costs no
 * Redis work at all (a flood stays as cheap to refuse as before). A charge that spends a quota
 * makes this pod refuse that user, room or everyone from memory until the window ends. The cost:
 * each pod stores one message past a spent quota before it learns, so a quota may be exceeded by
 * one message per pod. Undefined when all three are off.
 */
export function createStorageQuota(redis: Redis | Cluster | undefined, options: StorageQuotaOptions): StorageQuota | undefined {
  const { windowSeconds: duration, keyPrefix = LIMIT_PREFIXES.quota } = options;
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
  /** `<scope>:<key>` → when its window ends, for the quotas this pod saw spent. */
  const spent = new Map<string, { until: number; limitBytes: number }>();
  const block = (scope: QuotaScope, key: string, msLeft: number, limitBytes: number) => {
    spent.set(`${scope}:${key}`, { until: Date.now() + msLeft, limitBytes });
    if (spent.size > MAX_SPENT) {
      const now = Date.now();
      for (const [name, b] of spent) if (b.until <= now || spent.size > MAX_SPENT) spent.delete(name);
    }
  };

  const quota: StorageQuota = {
    check(user, room) {
      const now = Date.now();
      for (const [scope] of quotas) {
        const name = `${scope}:${keyOf(scope, user, room)}`;
        const block = spent.get(name);
        if (!block) continue;
        if (block.until <= now) spent.delete(name);
        else return { ok: false, scope, limitBytes: block.limitBytes, retryAfterMs: Math.max(1, block.until - now) };
      }
      return { ok: true };
    },
    async charge(user, room, bytes) {
      await Promise.all(
        quotas.map(async ([scope, limitBytes, limiter]) => {
          const key = keyOf(scope, user, room);
          try {
            const res = await limiter.consume(key, bytes);
            // Spent exactly: the next byte would be refused, so refuse the next message now.
            if (res.remainingPoints <= 0) block(scope, key, res.msBeforeNext, limitBytes);
          } catch (rejection) {
            // Neither Redis nor the insurance limiter answered: nothing is known, nothing blocked.
            if (rejection instanceof RateLimiterRes) block(scope, key, rejection.msBeforeNext, limitBytes);
          }
        }),
      );
    },
    prepare(user, room, bytes) {
      return {
        // rate-limiter-flexible's key: `<its keyPrefix>:<key>` (RateLimiterAbstract.getKey).
        keys: quotas.map(([scope]) => `${keyPrefix}:${scope}:${keyOf(scope, user, room)}`),
        bytes,
        windowSeconds: duration,
        settle(counted) {
          for (const [i, [scope, limitBytes]] of quotas.entries()) {
            const used = counted[2 * i];
            const msLeft = counted[2 * i + 1];
            if (used !== undefined && msLeft !== undefined && used >= limitBytes) block(scope, keyOf(scope, user, room), msLeft, limitBytes);
          }
        },
        charge: () => quota.charge(user, room, bytes),
      };
    },
  };
  return quota;
}
