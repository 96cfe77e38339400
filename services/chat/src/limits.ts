import type { RedisClient } from "@chat/shared";
import { LIMIT_PREFIXES, createRateLimit, createStorageQuota, type RateLimit, type StorageQuota } from "@chat/shared";
import type { ChatConfig } from "./config.js";

/** The chat's rate limits and quotas; a limit that is turned off (0) is undefined. */
export interface Limits {
  /** Messages per user per second, with a 10 s burst, across pods. */
  messages?: RateLimit;
  /** Joins per connection per minute. */
  joins?: RateLimit;
  /** Joins and `history` requests per user per minute, across pods. */
  userReads?: RateLimit;
  /** New (open mode) or failed (jwt mode) connections per client address per minute. */
  connections?: RateLimit;
  /** New connections per user per minute (jwt mode). */
  userConnections?: RateLimit;
  /** Member list requests per user (per address in open mode) per minute. */
  members?: RateLimit;
  /** Bytes stored per user, per room and in all. */
  storage?: StorageQuota;
}

/** Every limit from its configuration; in Redis (so shared by the pods) when there is one. */
export function createLimits(redis: RedisClient | undefined, config: ChatConfig): Limits {
  return {
    messages: createRateLimit(redis, {
      keyPrefix: LIMIT_PREFIXES.messages,
      points: config.RATE_LIMIT_MESSAGES_PER_SECOND,
      durationSeconds: 1,
      burst: { points: config.RATE_LIMIT_MESSAGES_BURST, durationSeconds: 10 },
    }),
    // A connection lives on one pod, so its join limit needs no Redis round trip.
    joins: createRateLimit(undefined, { keyPrefix: LIMIT_PREFIXES.joins, points: config.RATE_LIMIT_JOINS_PER_MINUTE, durationSeconds: 60 }),
    // Per user and across pods: reconnecting (a new socket id) does not reset it.
    userReads: createRateLimit(redis, { keyPrefix: LIMIT_PREFIXES.userReads, points: config.RATE_LIMIT_JOINS_PER_USER_PER_MINUTE, durationSeconds: 60 }),
    connections: createRateLimit(redis, {
      keyPrefix: LIMIT_PREFIXES.connections,
      points: config.RATE_LIMIT_CONNECTIONS_PER_IP,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    userConnections: createRateLimit(redis, {
      keyPrefix: LIMIT_PREFIXES.userConnections,
      points: config.RATE_LIMIT_CONNECTIONS_PER_USER,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    members: createRateLimit(redis, {
      keyPrefix: LIMIT_PREFIXES.members,
      points: config.RATE_LIMIT_MEMBERS_PER_MINUTE,
      durationSeconds: 60,
      blockInMemory: true,
    }),
    storage: createStorageQuota(redis, {
      userBytes: config.QUOTA_USER_BYTES,
      roomBytes: config.QUOTA_ROOM_BYTES,
      totalBytes: config.QUOTA_TOTAL_BYTES,
      windowSeconds: config.QUOTA_WINDOW_SECONDS,
    }),
  };
}
