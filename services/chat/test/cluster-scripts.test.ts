import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster } from "ioredis";
import { startRedisCluster, type RedisCluster } from "@chat/testkit";
import {
  PUT_RULE_SCRIPT,
  bansKey,
  createLogger,
  createRateLimit,
  createRedisClusterClient,
  createRedisRoomLog,
  luaScripts,
  slotOf,
  type BusMode,
} from "@chat/shared";
import { createConnectionCounts } from "../src/connection-cap.js";
import { createPresence } from "../src/presence.js";

/*
 * Every Lua script of services/shared and services/chat, and every multi-key pipeline and MULTI
 * of the chat, run through the services' own cluster client on a real 3-master Redis Cluster,
 * with rooms and users whose keys fall on every master: Redis refuses a script, MULTI or MGET
 * whose keys are in more than one slot (CROSSSLOT), and ioredis a pipeline that spans masters.
 */

const log = createLogger({ service: "test", pod: "test", level: "silent" });
/** Enough names that every master holds some of their slots. */
const ROOMS = Array.from({ length: 12 }, (_, i) => `script-room-${i}`);
const USERS = Array.from({ length: 12 }, (_, i) => ({ id: `script-user-${i}`, name: `User ${i}` }));

describe("the chat's Lua scripts and multi-key commands on a 3-master Redis Cluster", () => {
  let cluster: RedisCluster;
  let redis: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    const nodes = cluster.startupNodes.map(({ host, port }) => ({ host, port }));
    redis = createRedisClusterClient({ kind: "cluster", nodes }, {}, { role: "test", log });
  });

  afterAll(async () => {
    redis?.disconnect();
    await cluster?.dispose();
  });

  it("spreads the test's rooms and users over every master", async () => {
    await redis.ping();
    const owners = new Set([...ROOMS, ...USERS.map((u) => u.id)].map((name) => redis.slots[slotOf(`{${name}}`)]?.[0]));
    expect(owners.size).toBe(3);
  });

  it.each(["sharded", "classic"] as BusMode[])(
    "appends, rate-limits, edits, deletes, reads and marks read in every room, in %s mode, each in one script",
    async (busMode) => {
      const roomLog = createRedisRoomLog(redis, { busMode, prefix: `chat-${busMode}` });
      const limiter = createRateLimit(redis, { keyPrefix: `rl-${busMode}`, points: 100, durationSeconds: 60, burst: { points: 10, durationSeconds: 10 } })!;
      await Promise.all(
        ROOMS.map(async (room, i) => {
          const user = USERS[i]!;
          const first = await roomLog.append(room, "message", { room, text: "hello", user }, { dedupe: { scope: `${user.id}:1`, ttlSeconds: 60 } });
          const retry = await roomLog.append(room, "message", { room, text: "hello", user }, { dedupe: { scope: `${user.id}:1`, ttlSeconds: 60 } });
          expect(retry).toMatchObject({ id: first.id, duplicate: true });
          const second = await roomLog.appendLimited(room, "message", { room, text: "again", user }, { limiter, key: user.id });
          expect(second).toMatchObject({ duplicate: false });
          expect(await roomLog.amend(room, { kind: "edit", id: first.id, text: "hello!", by: user.id })).toMatchObject({ duplicate: false });
          const secondId = "id" in second ? second.id : "";
          expect(await roomLog.amend(room, { kind: "delete", id: secondId, by: user.id })).toMatchObject({ duplicate: false });
          const { entries, complete } = await roomLog.read(room, { limit: 10 });
          expect(complete).toBe(true);
          expect(entries.map((e) => e.event)).toEqual(["message", "message_edited", "message_deleted"]);
          expect(await roomLog.markRead(room, user.id, first.id)).toBe(first.id);
          expect(await roomLog.readState(room, user.id, 10)).toMatchObject({ lastRead: first.id });
        }),
      );
    },
  );

  it("counts each user's connections in one script, whatever master holds the user", async () => {
    const counts = createConnectionCounts(redis, "pod-a", log, { liveInstances: async (ids) => new Set(ids) });
    for (const user of USERS) {
      expect(await counts.connect(user.id)).toBe(1);
      expect(await counts.connect(user.id)).toBe(2);
    }
    // Its resync and close pipelines touch every user's hash: one pipeline per slot.
    counts.resync();
    await counts.close();
    expect(await redis.hgetall(`chat:connections:{${USERS[0]!.id}}`)).toEqual({});
  });

  it("stores a moderation rule with the server API's script", async () => {
    await Promise.all(ROOMS.map((room) => redis.eval(PUT_RULE_SCRIPT, 1, bansKey(room), "u1", JSON.stringify({ at: Date.now() }), Date.now())));
    expect(Object.keys(await redis.hgetall(bansKey(ROOMS[0]!)))).toEqual(["u1"]);
  });

  it("keeps presence on two pods (instance keys, room hashes and room sets in different slots) without a cross-slot command", async () => {
    const a = createPresence(redis, "pod-a", log, { ttlSeconds: 30 });
    const b = createPresence(redis, "pod-b", log, { ttlSeconds: 30 });
    await Promise.all(ROOMS.map((room, i) => Promise.all([a.add(room, USERS[i]!), b.add(room, USERS[(i + 1) % USERS.length]!)])));
    for (const [i, room] of ROOMS.entries()) {
      expect((await a.members(room)).map((u) => u.id).sort()).toEqual([USERS[i]!.id, USERS[(i + 1) % USERS.length]!.id].sort());
    }
    await redis.set("chat:instance:pod-b", "1");
    expect(await a.liveInstances(["pod-a", "pod-b", "pod-gone"])).toEqual(new Set(["pod-a", "pod-b"]));
    await Promise.all(ROOMS.map((room, i) => b.remove(room, USERS[(i + 1) % USERS.length]!)));
    expect((await a.members(ROOMS[0]!)).map((u) => u.id)).toEqual([USERS[0]!.id]);
    await Promise.all([a.close(), b.close()]);
    expect(await a.members(ROOMS[0]!)).toEqual([]);
  });

  it("ran every script the shared and chat code define, each on the master of its keys", async () => {
    const scripts = luaScripts();
    // The room log's read, append, amend, read-marker and read-state scripts, and the connection count.
    expect(scripts.length).toBeGreaterThanOrEqual(6);
    const masters = await cluster.masters();
    for (const { sha } of scripts) {
      const loaded = await Promise.all(
        masters.map((m) =>
          redis
            .nodes("master")
            .find((n) => n.options.port === m.port)!
            .script("EXISTS", sha),
        ),
      );
      expect(
        loaded.flat().some((exists) => exists === 1),
        `script ${sha} never ran`,
      ).toBe(true);
    }
  });
});
