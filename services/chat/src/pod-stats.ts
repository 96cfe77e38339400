import type { Server } from "socket.io";
import type { RedisClient } from "@chat/shared";
import { podStatsKey, type Logger, type PodStats } from "@chat/shared";

export interface PodStatsOptions {
  io: Server;
  redis: RedisClient;
  log: Logger;
  pod: string;
  instance: string;
  /** Rooms with a local member. */
  rooms: () => number;
  ready: () => boolean;
  /**
   * The figures expire after this, like the pod's liveness key: a dead pod drops out of `GET /v1/stats`.
   * @default 30
   */
  ttlSeconds?: number;
}

/**
 * Writes this pod's figures (connections, rooms with local members, readiness) next to its
 * liveness key, at the same pace, for the notifier's `GET /v1/stats`: one SET per period.
 * Returns the function that stops it.
 */
export function publishPodStats({ io, redis, log, pod, instance, rooms, ready, ttlSeconds = 30 }: PodStatsOptions): () => Promise<void> {
  const key = podStatsKey(instance);
  const write = () => {
    if (redis.status !== "ready") return;
    const stats: PodStats = { pod, instance, connections: io.of("/").sockets.size, rooms: rooms(), ready: ready(), at: Date.now() };
    redis.set(key, JSON.stringify(stats), "EX", ttlSeconds).catch((err: Error) => log.debug({ err: err.message }, "pod stats not written"));
  };
  write();
  // Once more soon after start, when the bus is usually ready: the first write rarely sees it.
  setTimeout(write, 1000).unref();
  const timer = setInterval(write, (ttlSeconds * 1000) / 3);
  timer.unref();
  return async () => {
    clearInterval(timer);
    if (redis.status === "ready") await redis.del(key).catch(() => undefined);
  };
}
