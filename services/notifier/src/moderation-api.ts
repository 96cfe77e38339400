import type { Router } from "express";
import type { Cluster, Redis } from "ioredis";
import { z } from "zod";
import {
  MODERATION_CHANNEL,
  PUT_RULE_SCRIPT,
  bansKey,
  liveRule,
  logId,
  mutesKey,
  roomName,
  userId,
  type Logger,
  type ModerationCommand,
  type ModerationRule,
  type RoomLog,
} from "@chat/shared";
import { bodyOf, jsonBody, paramOf, sendError, withRedis } from "./api-replies.js";

/** A ban or mute lasts at most a year; without `ttlSeconds`, until lifted. */
const MAX_TTL_SECONDS = 366 * 86_400;
const reason = z.string({ error: "must be a string" }).min(1, "must not be empty").max(200, "must be at most 200 characters").optional();
const ttlSeconds = z
  .number({ error: "must be a number of seconds" })
  .int("must be whole seconds")
  .min(1, "must be at least 1")
  .max(MAX_TTL_SECONDS, `must be at most ${MAX_TTL_SECONDS} (a year); leave it out for a rule that lasts until lifted`)
  .optional();
const kickBody = z.strictObject({ userId, reason }, { error: "the body must be a JSON object { userId, reason? }" });
const ruleBody = z.strictObject({ ttlSeconds, reason }, { error: "the body must be a JSON object { ttlSeconds?, reason? }" });
const disconnectBody = z.strictObject({ reason }, { error: "the body must be a JSON object { reason? }" });

export interface ModerationApiOptions {
  redis: Redis | Cluster;
  /** The rooms' log, for a moderator's delete (a `message_deleted` entry, delivered like any other). */
  roomLog: RoomLog;
  log: Logger;
  redisReady: () => boolean;
  /** Told of each message deleted, for the `message.deleted` webhook. */
  onDeleted?: (room: string, id: string, entryId: string) => void;
}

/**
 * Moderation routes (docs/server-api.md#moderation). Each stores what must outlive the moment
 * (bans, mutes) and publishes one command on `MODERATION_CHANNEL`, in one MULTI, so that a pod
 * never hears of a rule that is not stored. Every chat pod acts on its own sockets.
 */
export function moderationRoutes(v1: Router, { redis, roomLog, log, redisReady, onDeleted }: ModerationApiOptions): void {
  const command = (c: ModerationCommand) => JSON.stringify(c);

  v1.post("/rooms/:room/kick", ...jsonBody, async (req, res) => {
    const room = paramOf(res, "room", roomName, req.params.room);
    const body = room && bodyOf(res, kickBody, req.body);
    if (!room || !body) return;
    await withRedis(res, "nobody was kicked", redisReady, async () => {
      await redis.publish(MODERATION_CHANNEL, command({ op: "kick", room, userId: body.userId, ...(body.reason && { reason: body.reason }) }));
      log.info({ room, user: body.userId.slice(0, 64) }, "kick");
      res.status(202).json({ room, userId: body.userId });
    });
  });

  function ruleRoutes(path: "bans" | "mutes", keyOf: (room: string) => string, notDone: string) {
    v1.put(`/rooms/:room/${path}/:userId`, ...jsonBody, async (req, res) => {
      const room = paramOf(res, "room", roomName, req.params.room);
      const user = room && paramOf(res, "userId", userId, req.params.userId);
      const body = user && bodyOf(res, ruleBody, req.body);
      if (!room || !user || !body) return;
      const at = Date.now();
      const rule: ModerationRule = { at, ...(body.reason && { reason: body.reason }), ...(body.ttlSeconds && { until: at + body.ttlSeconds * 1000 }) };
      await withRedis(res, `the ${path === "bans" ? "ban" : "mute"} was not stored`, redisReady, async () => {
        // A ban kicks at once (the kick also empties the pods' cache of the room's rules).
        const then =
          path === "bans" ? command({ op: "kick", room, userId: user, ...(body.reason && { reason: body.reason }) }) : command({ op: "rules", room });
        await redis.multi().eval(PUT_RULE_SCRIPT, 1, keyOf(room), user, JSON.stringify(rule), at).publish(MODERATION_CHANNEL, then).exec();
        log.info({ room, user: user.slice(0, 64), ttlSeconds: body.ttlSeconds }, path === "bans" ? "ban" : "mute");
        res.status(200).json(describe(room, user, rule));
      });
    });

    v1.delete(`/rooms/:room/${path}/:userId`, async (req, res) => {
      const room = paramOf(res, "room", roomName, req.params.room);
      const user = room && paramOf(res, "userId", userId, req.params.userId);
      if (!room || !user) return;
      await withRedis(res, notDone, redisReady, async () => {
        const replies = await redis
          .multi()
          .hdel(keyOf(room), user)
          .publish(MODERATION_CHANNEL, command({ op: "rules", room }))
          .exec();
        res.status(200).json({ room, userId: user, lifted: replies?.[0]?.[1] === 1 });
      });
    });

    v1.get(`/rooms/:room/${path}`, async (req, res) => {
      const room = paramOf(res, "room", roomName, req.params.room);
      if (!room) return;
      await withRedis(res, `the ${path} were not read`, redisReady, async () => {
        const stored = await redis.hgetall(keyOf(room));
        const now = Date.now();
        const list = Object.entries(stored)
          .map(([user, value]) => [user, liveRule(value, now)] as const)
          .filter((pair): pair is readonly [string, ModerationRule] => pair[1] !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([user, rule]) => describe(room, user, rule));
        res.json({ room, [path]: list });
      });
    });
  }
  ruleRoutes("bans", bansKey, "the ban was not lifted");
  ruleRoutes("mutes", mutesKey, "the mute was not lifted");

  v1.delete("/rooms/:room/messages/:id", async (req, res) => {
    const room = paramOf(res, "room", roomName, req.params.room);
    const id = room && paramOf(res, "id", logId, req.params.id);
    if (!room || !id) return;
    await withRedis(
      res,
      "the message was not deleted",
      redisReady,
      async () => {
        // Main's amendment (room-log-amend.ts), without `by`: anyone's message, and members get the
        // same `message_deleted { room, id }` entry as for a member's own delete. The script removes
        // the message and its edits, so a second delete of the same id finds nothing: 404.
        const result = await roomLog.amend(room, { kind: "delete", id });
        if ("refused" in result) return sendError(res, 404, "not_found", `no message ${id} in ${room}'s log (deleted already, or trimmed)`);
        onDeleted?.(room, id, result.id);
        log.info({ room, id }, "message deleted");
        res.status(200).json({ room, id, entryId: result.id });
      },
      log,
    );
  });

  v1.post("/users/:userId/disconnect", ...jsonBody, async (req, res) => {
    const user = paramOf(res, "userId", userId, req.params.userId);
    const body = user && bodyOf(res, disconnectBody, req.body);
    if (!user || !body) return;
    await withRedis(res, "nobody was disconnected", redisReady, async () => {
      await redis.publish(MODERATION_CHANNEL, command({ op: "disconnect", userId: user, ...(body.reason && { reason: body.reason }) }));
      log.info({ user: user.slice(0, 64) }, "disconnect");
      res.status(202).json({ userId: user });
    });
  });
}

/** A rule as the API shows it: ISO times, and the seconds it has left. */
function describe(room: string, user: string, { reason, at, until }: ModerationRule) {
  return {
    room,
    userId: user,
    ...(reason && { reason }),
    since: new Date(at).toISOString(),
    ...(until !== undefined && { until: new Date(until).toISOString(), expiresInSeconds: Math.max(0, Math.ceil((until - Date.now()) / 1000)) }),
  };
}
