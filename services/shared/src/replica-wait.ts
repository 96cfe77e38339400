import type { Redis } from "ioredis";
import type { RoomLog } from "./room-log.js";

/** `REDIS_WAIT_REPLICAS` and `REDIS_WAIT_TIMEOUT_MS`. */
export interface ReplicaWaitOptions {
  /** Replicas that must confirm an append before it counts as done; 0 returns the log unchanged. @default 0 */
  replicas: number;
  /** How long to wait for them; then the append fails (it may still be stored). @default 1000 */
  timeoutMs: number;
}

/** The replicas did not confirm an append in time: the caller answers `unavailable`, a retry is deduplicated. */
export class ReplicaWaitError extends Error {
  constructor(
    readonly confirmed: number,
    readonly wanted: number,
  ) {
    super(`only ${confirmed} of ${wanted} Redis replicas confirmed the write in time`);
    this.name = "ReplicaWaitError";
  }
}

/**
 * `log`, whose appends resolve only once `WAIT` says `replicas` replicas have them. Replication is
 * asynchronous, so without it an acked message that the master had not yet passed on is lost when
 * a replica is promoted. `WAIT` covers every earlier write of the connection, and the append was
 * sent on it just before, so it covers the append. It blocks that connection meanwhile: appends
 * queue behind it, which is the latency the option costs (docs/deploy.md has the figures).
 * Standalone servers and Sentinel only: on a Redis Cluster `WAIT` would have to go to the master
 * of the room's slot.
 */
export function withReplicaWait(log: RoomLog, redis: Redis, { replicas, timeoutMs }: ReplicaWaitOptions): RoomLog {
  if (replicas <= 0) return log;
  async function confirmed<T>(result: T): Promise<T> {
    const count = await redis.wait(replicas, timeoutMs);
    if (count < replicas) throw new ReplicaWaitError(count, replicas);
    return result;
  }
  return {
    append: async (...args) => confirmed(await log.append(...args)),
    async appendLimited(...args) {
      const result = await log.appendLimited(...args);
      // A refused append wrote nothing worth waiting for.
      return "refused" in result ? result : confirmed(result);
    },
    async amend(...args) {
      const result = await log.amend(...args);
      // An edit or delete is acked like a message: only once the replicas have it.
      return "refused" in result ? result : confirmed(result);
    },
    // A read marker only moves forward, and a client sends it again: not worth a WAIT.
    markRead: (...args) => log.markRead(...args),
    read: (...args) => log.read(...args),
    readState: (...args) => log.readState(...args),
  };
}
