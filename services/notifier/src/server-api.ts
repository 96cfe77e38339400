import type { Router } from "express";
import type { Redis } from "ioredis";
import type { Logger, RoomLog } from "@chat/shared";
import { adminRoutes } from "./admin-api.js";
import { moderationRoutes } from "./moderation-api.js";

export interface ServerApiOptions {
  redis: Redis;
  roomLog: RoomLog;
  log: Logger;
  redisReady: () => boolean;
  /** Told of each message a moderator deleted (the `message.deleted` webhook). */
  onDeleted?: (room: string, id: string, entryId: string) => void;
  /** More routes under /v1 (the webhooks' replay). */
  more?: ((v1: Router) => void)[];
}

/** The server API's routes (docs/server-api.md), mounted on the /v1 router behind its key check and rate limit. */
export function serverApiRoutes(options: ServerApiOptions): (v1: Router) => void {
  return (v1) => {
    moderationRoutes(v1, options);
    adminRoutes(v1, options);
    for (const add of options.more ?? []) add(v1);
  };
}
