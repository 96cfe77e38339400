import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, waitFor, type RedisServer } from "@chat/testkit";
import { ReplicaWaitError, withReplicaWait } from "../src/replica-wait.js";
import { createRedisRoomLog } from "../src/room-log.js";

/*
 * REDIS_WAIT_REPLICAS on a real master: an append resolves only once WAIT confirms the replicas,
 * and fails (as ReplicaWaitError, which the chat answers `unavailable`) when they are missing.
 */
describe("an append that waits for replicas", () => {
  let master: RedisServer;
  let replica: RedisServer | undefined;
  let redis: Redis;

  beforeAll(async () => {
    master = await startRedis();
    redis = new Redis(master.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await replica?.dispose();
    await master?.dispose();
  });

  it("fails with ReplicaWaitError after the timeout when no replica confirms, and leaves the log unchanged without the option", async () => {
    const log = createRedisRoomLog(redis);
    const waiting = withReplicaWait(log, redis, { replicas: 1, timeoutMs: 100 });
    const error = await waiting.append("waited", "message", { text: "alone" }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ReplicaWaitError);
    expect((error as ReplicaWaitError).message).toBe("only 0 of 1 Redis replicas confirmed the write in time");
    expect(withReplicaWait(log, redis, { replicas: 0, timeoutMs: 100 })).toBe(log);
  });

  it("resolves once a replica has the append, which is then readable on the replica", async () => {
    replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(master.port)] });
    const onReplica = new Redis(replica.url);
    try {
      await waitFor(async () => (await onReplica.info("replication")).includes("master_link_status:up"), { timeoutMs: 15_000, what: "the replica to sync" });
      const waiting = withReplicaWait(createRedisRoomLog(redis), redis, { replicas: 1, timeoutMs: 5000 });
      const { id } = await waiting.append("waited", "message", { text: "replicated" });
      // WAIT said the replica has it: it is there without waiting any further.
      expect((await onReplica.xrange("chat:log:{waited}", id, id)).map(([entryId]) => entryId)).toEqual([id]);
    } finally {
      onReplica.disconnect();
    }
  });
});
