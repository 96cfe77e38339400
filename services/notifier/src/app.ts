import { randomUUID } from "node:crypto";
import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Response, type Router } from "express";
import { UnencodableError, validate, type ErrorCode, type Logger, type RateLimit } from "@chat/shared";
import { createKeyCheck } from "./auth.js";
import type { NotifierConfig } from "./config.js";
import { checkHttpBody, checkTarget, type Checked, type Target } from "./events.js";
import { pinoHttp } from "pino-http";
import type { NotifierMetrics } from "./metrics.js";
import type { Publisher } from "./publisher.js";
import { revokeRequest, type Revoker } from "./revoke.js";

/** The chat protocol's codes, plus the three only an HTTP API has. */
export type HttpErrorCode = ErrorCode | "not_found" | "payload_too_large" | "unsupported_media_type";

/** 429's body also says how long to wait, like the chat's `rate_limited` ack. */
function sendRateLimited(res: Response, retryAfterMs: number): void {
  res.set("Retry-After", String(Math.ceil(retryAfterMs / 1000)));
  res.status(429).json({ error: { code: "rate_limited", message: `too many requests for this API key; retry in ${retryAfterMs} ms`, retryAfterMs } });
}

export interface NotifierAppOptions {
  config: Pick<NotifierConfig, "NOTIFIER_API_KEYS" | "NOTIFIER_MAX_DATA_BYTES" | "NOTIFIER_MAX_DATA_DEPTH">;
  log: Logger;
  publisher: Publisher;
  revoker: Revoker;
  metrics: NotifierMetrics;
  /** Calls per API key, shared by every replica; undefined: no limit. */
  rateLimit?: RateLimit;
  /** True when Redis can take a command right now. */
  redisReady: () => boolean;
  /** Adds the server API's routes (server-api.ts) to /v1, behind the same key check and rate limit. @default none */
  serverApi?: (v1: Router) => void;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Every error the API sends has this one shape. */
function sendError(res: Response, status: number, code: HttpErrorCode, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** Every log line of a request carries its id (the caller's X-Request-Id when well-formed). */
function requestLogger(log: Logger): RequestHandler {
  return pinoHttp({
    logger: log,
    genReqId: (req, res) => {
      const given = req.headers["x-request-id"];
      const id = typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader("x-request-id", id);
      return id;
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? "error" : res.statusCode >= 400 ? "info" : "debug"),
    // Headers hold the API key: log the method, route and status only.
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, url: req.url.split("?")[0]!.slice(0, 200) }),
      res: (res: { statusCode: number }) => ({ status: res.statusCode }),
    },
  });
}

/** Checks the API key, then its rate: both before the body is read. */
function createAuthenticate({ config, rateLimit, metrics }: NotifierAppOptions): RequestHandler {
  const keyOf = createKeyCheck(config.NOTIFIER_API_KEYS);
  return async (req, res, next) => {
    const key = keyOf(req.get("authorization"));
    if (!key) {
      res.set("WWW-Authenticate", 'Bearer realm="notifier"');
      return sendError(res, 401, "unauthorized", "send Authorization: Bearer <API key>");
    }
    const limited = rateLimit ? await rateLimit.consume(key) : { ok: true as const };
    if (limited.ok) return next();
    metrics.rateLimited.inc();
    sendRateLimited(res, limited.retryAfterMs);
  };
}

/** The content type is checked before the body is parsed. */
const requireJson: RequestHandler = (req, res, next) => {
  // `req.is` is false for another type, null for no body: the latter fails validation as a 400.
  if (req.is("application/json") === false) {
    return sendError(res, 415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)");
  }
  next();
};

/** The events routes' handler: validates, publishes, and answers 202 only once Redis took the event. */
function createEventIntake({ config, log, publisher, metrics, redisReady }: NotifierAppOptions) {
  const dataLimits = { maxBytes: config.NOTIFIER_MAX_DATA_BYTES, maxDepth: config.NOTIFIER_MAX_DATA_DEPTH };
  return async function accept(res: Response, target: Checked<Target>, body: unknown): Promise<void> {
    if (!target.ok) return sendError(res, 400, "bad_request", target.reason);
    const checked = checkHttpBody(body, dataLimits);
    if (!checked.ok) {
      return sendError(res, checked.tooLarge ? 413 : 400, checked.tooLarge ? "payload_too_large" : "bad_request", checked.reason);
    }
    metrics.count("http", "accepted");
    // Never a 202 that Redis did not confirm: callers retry a 503, and the id makes that safe.
    if (!redisReady()) {
      metrics.count("http", "failed");
      return sendError(res, 503, "unavailable", "Redis is unreachable; the event was not sent");
    }
    const { type, data } = checked.value;
    const event = { id: checked.value.id ?? randomUUID(), target: target.value, type, data };
    try {
      const fresh = await publisher.publish(event);
      metrics.count("http", fresh ? "delivered" : "duplicate");
      log.debug({ id: event.id, target: target.value.kind, type, duplicate: !fresh }, "http event");
    } catch (err) {
      metrics.count("http", "failed");
      // What the encoder cannot take is the caller's to fix (a 400); only Redis is a 503.
      if (err instanceof UnencodableError) return sendError(res, 400, "bad_request", `data: ${err.message}`);
      log.warn({ id: event.id, err: (err as Error).message }, "http event not published");
      return sendError(res, 503, "unavailable", "Redis is unreachable; the event was not sent");
    }
    res.status(202).json({ id: event.id });
  };
}

/** `POST /v1/tokens/revoke`. */
function revokeHandler({ log, revoker, redisReady }: NotifierAppOptions): RequestHandler {
  return async (req, res) => {
    // The same formatter as the events routes and the chat: every 400 names its field.
    const parsed = validate(revokeRequest, req.body);
    if (!parsed.ok) return sendError(res, 400, "bad_request", parsed.error.message);
    if (!redisReady()) return sendError(res, 503, "unavailable", "Redis is unreachable; the token was not revoked");
    try {
      const result = await revoker.revoke(parsed.data);
      log.info({ jti: result.jti.slice(0, 64), denylisted: result.denylisted }, "token revoked");
      res.status(200).json(result);
    } catch (err) {
      if (err instanceof RangeError) return sendError(res, 400, "bad_request", err.message);
      log.warn({ err: (err as Error).message }, "revocation failed");
      sendError(res, 503, "unavailable", "Redis is unreachable; the token was not revoked");
    }
  };
}

/** Body-parser and routing errors, in the API's one error shape. */
function errorHandler(log: Logger, maxDataBytes: number): ErrorRequestHandler {
  return (err: { type?: string; status?: number; expose?: boolean; message?: string }, _req, res, next) => {
    if (res.headersSent) return next(err);
    if (err.type === "entity.too.large") {
      return sendError(res, 413, "payload_too_large", `the body is too large: data may be at most ${maxDataBytes} bytes`);
    }
    if (err.type === "charset.unsupported" || err.type === "encoding.unsupported") {
      return sendError(res, 415, "unsupported_media_type", err.message ?? "unsupported body encoding");
    }
    if (err.type === "entity.parse.failed") return sendError(res, 400, "bad_request", "the body is not valid JSON");
    const status = err.status ?? 500;
    if (status >= 400 && status < 500) {
      return sendError(res, status, "bad_request", err.expose && err.message ? err.message : "malformed request (is the URL encoded correctly?)");
    }
    log.error({ err }, "request failed");
    sendError(res, 500, "internal", "internal error; the event was not sent");
  };
}

/**
 * The HTTP intake, without listening. Order matters: the key is checked before the body is even
 * read, and the content type before it is parsed.
 */
export function createNotifierApp(options: NotifierAppOptions): Express {
  const { config, log, metrics } = options;
  const app = express();
  app.disable("x-powered-by");
  app.use(metrics.httpTimer);
  app.use(requestLogger(log));
  const authenticate = createAuthenticate(options);
  // Room for the target, type, id and JSON punctuation around the largest `data`.
  const parseJson = express.json({ limit: config.NOTIFIER_MAX_DATA_BYTES + 16 * 1024, strict: true });
  const accept = createEventIntake(options);

  const v1 = express.Router();
  v1.use(metrics.routePrefix);
  v1.use(authenticate);
  v1.post("/rooms/:room/events", requireJson, parseJson, (req, res) => accept(res, checkTarget("room", req.params.room as string), req.body));
  v1.post("/users/:userId/events", requireJson, parseJson, (req, res) => accept(res, checkTarget("user", req.params.userId as string), req.body));
  v1.post("/broadcast", requireJson, parseJson, (req, res) => accept(res, { ok: true, value: { kind: "broadcast" } }, req.body));
  v1.post("/tokens/revoke", requireJson, parseJson, revokeHandler(options));
  options.serverApi?.(v1);
  app.use("/v1", v1);

  app.use((req, res) => sendError(res, 404, "not_found", `no route ${req.method} ${req.path.slice(0, 200)}`));
  app.use(errorHandler(log, config.NOTIFIER_MAX_DATA_BYTES));

  return app;
}
