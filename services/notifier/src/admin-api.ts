import type { Router } from "express";
import type { Cluster, Redis } from "ioredis";
import { z } from "zod";
import {
  HISTORY_PAGE_DEFAULT,
  HISTORY_PAGE_MAX,
  logId,
  podStatsKey,
  CHAT_PRESENCE_KEYS,
  execBySlot,
  mgetBySlot,
  roomKeyLayout,
  roomName,
  validate,
  type BusMode,
  type PodStats,
  type RoomLog,
  type User,
} from "@chat/shared";
import { paramOf, sendError, withRedis } from "./api-replies.js";

export interface AdminApiOptions {
  redis: Redis | Cluster;
  roomLog: RoomLog;
  /** The deployment's bus mode: on a Redis Cluster in sharded mode, a room's log is keyed by its channel (room-log-append.ts). @default "classic" */
  busMode?: BusMode;
  redisReady: () => boolean;
  /**
   * Bytes of stored entries one messages page returns at most (the chat's `CATCH_UP_MAX_BYTES` default).
   * @default 262144
   */
  maxPageBytes?: number;
}

const ROOMS_PAGE_MAX = 100;
const limit = (max: number, fallback: number) =>
  z.coerce
    .number({ error: "must be a number" })
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(max, `must be at most ${max}`)
    .default(fallback);
const roomsQuery = z.object({
  prefix: z.string().max(64, "must be at most 64 characters").default(""),
  cursor: roomName.optional(),
  limit: limit(ROOMS_PAGE_MAX, 50),
});
const messagesQuery = z
  .object({ before: logId.optional(), after: logId.optional(), limit: limit(HISTORY_PAGE_MAX, HISTORY_PAGE_DEFAULT) })
  .refine((q) => q.before === undefined || q.after === undefined, "give before or after, not both");

/** A query string holds strings, or arrays of them when a name repeats: the latter is refused by the schema. */
function queryOf<T>(res: Parameters<typeof sendError>[0], schema: z.ZodType<T>, query: unknown): T | undefined {
  const parsed = validate(schema, query);
  if (parsed.ok) return parsed.data;
  sendError(res, 400, "bad_request", parsed.error.message);
  return undefined;
}

/** The pod instances whose liveness key is there. */
async function liveInstances(redis: Redis | Cluster): Promise<string[]> {
  const ids = await redis.smembers(CHAT_PRESENCE_KEYS.instances);
  if (ids.length === 0) return [];
  const alive = await mgetBySlot(redis, ids.map(CHAT_PRESENCE_KEYS.instance));
  return ids.filter((_, i) => alive[i] !== null);
}

/** The users of a room's presence hash whose pod lives, by id. */
function presentUsers(fields: Record<string, string>, live: Set<string>): Map<string, User> {
  const users = new Map<string, User>();
  for (const [field, value] of Object.entries(fields)) {
    const bar = field.indexOf("|");
    if (bar < 0 || !live.has(field.slice(0, bar))) continue;
    try {
      const user = JSON.parse(value) as User;
      if (typeof user?.id === "string" && typeof user.name === "string") users.set(user.id, { id: user.id, name: user.name });
    } catch {
      // a malformed entry is skipped, as presence itself does
    }
  }
  return users;
}

/**
 * Admin reads (docs/server-api.md#admin-reads). Live rooms come from the pods' own room sets
 * (`chat:instance-rooms:<pod>`, which presence keeps), never from a keyspace scan: a page costs
 * one SMEMBERS per live pod, then a pipeline over the page's rooms (on a Redis Cluster, one per
 * slot, sent at once: `execBySlot`).
 */
export function adminRoutes(v1: Router, { redis, roomLog, redisReady, maxPageBytes = 256 * 1024, busMode = "classic" }: AdminApiOptions): void {
  const logKeyOf = (room: string) => roomKeyLayout(redis, "chat", busMode)(room).stream;
  v1.get("/rooms", async (req, res) => {
    const query = queryOf(res, roomsQuery, req.query);
    if (!query) return;
    await withRedis(res, "the rooms were not read", redisReady, async () => {
      const live = await liveInstances(redis);
      const sets = await execBySlot(
        redis,
        live.map((id) => ["smembers", CHAT_PRESENCE_KEYS.roomsOf(id)]),
      );
      const all = new Set<string>();
      for (const rooms of sets) for (const room of rooms as string[]) all.add(room);
      const { prefix, cursor } = query;
      const matching = [...all].filter((room) => room.startsWith(prefix) && (cursor === undefined || room > cursor)).sort();
      const page = matching.slice(0, query.limit);
      const replies = await execBySlot(
        redis,
        page.flatMap((room) => [
          ["hgetall", CHAT_PRESENCE_KEYS.room(room)],
          ["xrevrange", logKeyOf(room), "+", "-", "COUNT", "1"],
        ]),
      );
      const liveSet = new Set(live);
      const rooms = page.map((room, i) => {
        const fields = (replies[2 * i] ?? {}) as Record<string, string>;
        const last = (replies[2 * i + 1] ?? []) as [string, string[]][];
        return { room, members: presentUsers(fields, liveSet).size, lastId: last[0]?.[0] ?? null };
      });
      const more = matching.length > page.length;
      res.json({ rooms, ...(more && { cursor: page.at(-1) }) });
    });
  });

  v1.get("/rooms/:room", async (req, res) => {
    const room = paramOf(res, "room", roomName, req.params.room);
    if (!room) return;
    await withRedis(res, "the room was not read", redisReady, async () => {
      const live = new Set(await liveInstances(redis));
      const key = logKeyOf(room);
      const replies = await execBySlot(redis, [
        ["hgetall", CHAT_PRESENCE_KEYS.room(room)],
        ["xlen", key],
        ["xrange", key, "-", "+", "COUNT", 1],
        ["xrevrange", key, "+", "-", "COUNT", 1],
      ]);
      const members = [...presentUsers(replies[0] as Record<string, string>, live).values()].sort(
        (a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
      );
      const first = (replies[2] as [string, string[]][])[0]?.[0] ?? null;
      const last = (replies[3] as [string, string[]][])[0]?.[0] ?? null;
      res.json({ room, members, log: { length: replies[1] as number, firstId: first, lastId: last } });
    });
  });

  v1.get("/rooms/:room/messages", async (req, res) => {
    const room = paramOf(res, "room", roomName, req.params.room);
    const query = room && queryOf(res, messagesQuery, req.query);
    if (!room || !query) return;
    await withRedis(res, "the messages were not read", redisReady, async () => {
      const page = await roomLog.read(room, { ...query, maxBytes: maxPageBytes });
      const { entries, complete, gap, more, cursor } = page;
      res.json({ room, messages: entries, complete, gap, more, ...(cursor !== undefined && { cursor }) });
    });
  });

  v1.get("/stats", async (_req, res) => {
    await withRedis(res, "the stats were not read", redisReady, async () => {
      const ids = (await redis.smembers(CHAT_PRESENCE_KEYS.instances)).sort();
      const [alive, stats] = ids.length
        ? await Promise.all([mgetBySlot(redis, ids.map(CHAT_PRESENCE_KEYS.instance)), mgetBySlot(redis, ids.map(podStatsKey))])
        : [[], []];
      const pods = ids
        .map((instance, i) => {
          let figures: Partial<PodStats> = {};
          try {
            figures = JSON.parse(stats[i] ?? "{}") as PodStats;
          } catch {
            // malformed figures read as none
          }
          return {
            instance,
            pod: figures.pod ?? instance,
            alive: alive[i] !== null,
            ready: alive[i] !== null && figures.ready === true,
            connections: figures.connections ?? 0,
            rooms: figures.rooms ?? 0,
            ...(figures.at !== undefined && { reportedAt: new Date(figures.at).toISOString() }),
          };
        })
        .filter((pod) => pod.alive);
      res.json({
        pods,
        totals: { pods: pods.length, ready: pods.filter((p) => p.ready).length, connections: pods.reduce((sum, p) => sum + p.connections, 0) },
      });
    });
  });
}
