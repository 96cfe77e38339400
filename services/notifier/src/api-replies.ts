import express, { type RequestHandler, type Response } from "express";
import { validate, type ErrorCode, type Logger } from "@chat/shared";
import type { z } from "zod";

/**
 * Replies and body parsing of the server API routes (moderation, admin reads, webhooks), in the
 * same shapes as the events routes of app.ts: `{ error: { code, message } }` on every error.
 */
export type ApiErrorCode = ErrorCode | "not_found" | "payload_too_large" | "unsupported_media_type";

export function sendError(res: Response, status: number, code: ApiErrorCode, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** Bodies of these routes are small objects; a body is optional where every field is. */
const parseSmallJson = express.json({ limit: 16 * 1024, strict: true });

/** 415 for a body that is not JSON, then the JSON parser; a missing body reads as `{}`. */
export const jsonBody: RequestHandler[] = [
  (req, res, next) => {
    // An empty body (Content-Length: 0, as a PUT without one is sent) reads as `{}`.
    if (req.headers["content-length"] !== "0" && req.is("application/json") === false)
      return sendError(res, 415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)");
    next();
  },
  parseSmallJson,
];

/** The body (or `{}`) against `schema`; on failure the 400 is sent and undefined returned. */
export function bodyOf<T>(res: Response, schema: z.ZodType<T>, body: unknown): T | undefined {
  const parsed = validate(schema, body ?? {});
  if (parsed.ok) return parsed.data;
  sendError(res, 400, "bad_request", parsed.error.message);
  return undefined;
}

/** A path parameter against `schema`, named in the 400. */
export function paramOf<T>(res: Response, name: string, schema: z.ZodType<T>, value: unknown): T | undefined {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  sendError(res, 400, "bad_request", `${name}: ${parsed.error.issues[0]?.message ?? "is invalid"}`);
  return undefined;
}

/** Runs a route's Redis work; a failure is a 503 naming what was not done. */
export async function withRedis(res: Response, notDone: string, ready: () => boolean, work: () => Promise<void>, log?: Logger): Promise<void> {
  if (!ready()) return sendError(res, 503, "unavailable", `Redis is unreachable; ${notDone}`);
  try {
    await work();
  } catch (err) {
    if (res.headersSent) return;
    if (err instanceof RangeError) return sendError(res, 400, "bad_request", err.message);
    log?.warn({ err: (err as Error).message }, `server API: ${notDone}`);
    sendError(res, 503, "unavailable", `Redis is unreachable; ${notDone}`);
  }
}
