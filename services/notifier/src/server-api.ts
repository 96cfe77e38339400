import type { Router } from "express";
import { adminRoutes, type AdminApiOptions } from "./admin-api.js";
import { moderationRoutes, type ModerationApiOptions } from "./moderation-api.js";

/** What the moderation routes need (the admin reads take the same), and more routes under /v1. */
export interface ServerApiOptions extends ModerationApiOptions, Pick<AdminApiOptions, "busMode"> {
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
