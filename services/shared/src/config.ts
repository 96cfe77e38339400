import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";

/**
 * Raised when the environment does not describe a valid configuration. The message holds one
 * line per bad variable, so an operator can fix them all in one go.
 */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * Validates `env` against a zod object schema whose keys are environment variable names.
 * Empty strings count as unset, so `FOO=` in a manifest falls back to the default.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") cleaned[key] = value.trim();
  }
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? "(environment)");
        const got = cleaned[name] === undefined ? "unset" : JSON.stringify(redact(name, cleaned[name]));
        return `${name}: ${issue.message} (got ${got})`;
      }),
    );
  }
  return result.data;
}

function redact(name: string, value: string): string {
  if (/SECRET|PASSWORD|KEY|TOKEN/.test(name)) return "<redacted>";
  if (name.endsWith("_URL")) return value.replace(/\/\/[^@/]*@/, "//<credentials>@");
  return value;
}

/** Variables shared by every service of the product. */
export const env = {
  port: (fallback: number) =>
    z.coerce
      .number({ message: "must be a number" })
      .int("must be a whole number")
      .min(0, "must be between 0 and 65535")
      .max(65535, "must be between 0 and 65535")
      .default(fallback),
  positiveInt: (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce
      .number({ message: "must be a number" })
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(max, `must be at most ${max}`)
      .default(fallback),
  nonNegativeInt: (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce
      .number({ message: "must be a number" })
      .int("must be a whole number")
      .min(0, "must be 0 or more")
      .max(max, `must be at most ${max}`)
      .default(fallback),
  logLevel: () =>
    z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
        message: "must be one of fatal, error, warn, info, debug, trace, silent",
      })
      .default("info"),
  redisUrl: () =>
    z
      .string()
      .refine((value) => /^rediss?:\/\/[^\s]+$/.test(value) && URL.canParse(value), {
        message: "must be a redis:// or rediss:// URL, e.g. redis://:password@redis:6379/0",
      })
      .optional(),
  /** A file that must exist and be readable at start, read once. */
  readableFile: () =>
    z
      .string()
      .refine((path) => {
        try {
          readFileSync(path);
          return true;
        } catch {
          return false;
        }
      }, "must name a readable file")
      .optional(),
  /**
   * `BUS_MODE`: classic or sharded pub/sub between the pods, or `auto` (the deployment's mode,
   * else sharded when Redis supports it). Chat and notifier read it with this one rule.
   */
  busMode: () =>
    z.enum(["auto", "classic", "sharded"], { message: "must be auto, classic or sharded" }).default("auto"),
  podName: () =>
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,253}$/, "must be 1-253 characters of A-Z a-z 0-9 _ . -")
      .default(hostname().replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 253) || "local"),
};
