import { z } from "zod";
import { DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENT_TYPES, env, type EnvCheck, type WebhookEventType } from "@chat/shared";

const list = (value: string) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");

/** Secrets shorter than this are guessable. */
const MIN_SECRET_LENGTH = 16;

/** The webhook variables of the notifier's configuration (docs/server-api.md#webhooks). */
export const webhookEnv = {
  /** Comma-separated endpoints; each gets every event, on its own. Unset: no webhooks. */
  WEBHOOK_URLS: z
    .string()
    .default("")
    .transform(list)
    .pipe(z.array(z.url({ protocol: /^https?$/, error: "every URL must be an http:// or https:// URL" })).max(10, "at most 10 endpoints")),
  /** Comma-separated signing secrets: the first signs, every one gets a `v1=` so receivers can rotate. */
  WEBHOOK_SECRET: z
    .string()
    .default("")
    .transform(list)
    .pipe(z.array(z.string().min(MIN_SECRET_LENGTH, `every secret must be at least ${MIN_SECRET_LENGTH} characters`)).max(5, "at most 5 secrets")),
  /** Comma-separated event types to send; the message events are off by default. */
  WEBHOOK_EVENTS: z
    .string()
    .default(DEFAULT_WEBHOOK_EVENTS.join(","))
    .transform(list)
    .pipe(
      z
        .array(z.enum(WEBHOOK_EVENT_TYPES, { error: `every event must be one of ${WEBHOOK_EVENT_TYPES.join(", ")}` }))
        .min(1, "must name at least one event (unset WEBHOOK_URLS to send none)"),
    )
    .transform((events) => [...new Set(events)] as WebhookEventType[]),
  /** How long one delivery may take before it counts as failed (and is retried). */
  WEBHOOK_TIMEOUT_MS: env.positiveInt(5_000, 60_000),
  /** Tries per batch before its events go to the dead letters. */
  WEBHOOK_MAX_ATTEMPTS: env.positiveInt(8, 100),
  /** First wait between tries; it doubles each time (with jitter), up to `WEBHOOK_RETRY_MAX_MS`. */
  WEBHOOK_RETRY_BASE_MS: env.positiveInt(500, 60_000),
  WEBHOOK_RETRY_MAX_MS: env.positiveInt(30_000, 3_600_000),
  /** Events per request at most. */
  WEBHOOK_BATCH_SIZE: env.positiveInt(100, 1_000),
  /** How long a batch waits for more events after its first one. */
  WEBHOOK_BATCH_MS: env.nonNegativeInt(250, 10_000),
};

export const webhookSecretRequired: EnvCheck = (raw) =>
  raw.WEBHOOK_URLS && !raw.WEBHOOK_SECRET ? ["WEBHOOK_SECRET: is required with WEBHOOK_URLS: comma-separated secrets of 16+ characters (got unset)"] : [];
