import { createPublicKey, X509Certificate } from "node:crypto";
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
 * A rule between variables, read from the raw (trimmed, non-empty) values: it runs even when other
 * variables are bad, so one run reports every problem. Returns complete lines, e.g.
 * `"AUTH_MODE=jwt needs ..."`, or nothing.
 */
export type EnvCheck = (raw: Readonly<Record<string, string>>) => string[];

/**
 * Validates `env` against a zod object schema whose keys are environment variable names, then
 * `checks` (rules between variables). Every problem becomes one line of one `ConfigError`.
 * Empty strings count as unset, so `FOO=` in a manifest falls back to the default.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv, checks: EnvCheck[] = []): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") cleaned[key] = value.trim();
  }
  const result = schema.safeParse(cleaned);
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? "(environment)");
        const got = cleaned[name] === undefined ? "unset" : JSON.stringify(redact(name, cleaned[name]));
        return `${name}: ${issue.message} (got ${got})`;
      });
  // One line per variable: the first thing wrong with it is enough to act on.
  const seen = new Set<string>();
  const lines = problems.filter((line) => {
    const name = line.slice(0, line.indexOf(":"));
    if (seen.has(name)) return false;
    seen.add(name);
    return true;
  });
  lines.push(...checks.flatMap((check) => check(cleaned)));
  if (lines.length || !result.success) throw new ConfigError(lines);
  return result.data;
}

function redact(name: string, value: string): string {
  if (/SECRET|PASSWORD|KEY|TOKEN/.test(name)) return "<redacted>";
  if (name.endsWith("_URL")) return value.replace(/\/\/[^@/]*@/, "//<credentials>@");
  return value;
}

/** A whole number from `min` (`below` says so) up to `max`, `fallback` when unset. */
function wholeNumber(min: number, below: string) {
  return (fallback: number, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce.number({ message: "must be a number" }).int("must be a whole number").min(min, below).max(max, `must be at most ${max}`).default(fallback);
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
  positiveInt: wholeNumber(1, "must be at least 1"),
  nonNegativeInt: wholeNumber(0, "must be 0 or more"),
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
  /** A PEM file of CA certificates that must exist, be readable and parse, at start. */
  caFile: () =>
    z
      .string()
      .superRefine((path, ctx) => {
        const problem = caFileProblem(path);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional(),
  /** An RS256 or ES256 public key in PEM (`\n` escapes allowed, for one-line env values). */
  publicKey: () =>
    z
      .string()
      .refine((pem) => {
        try {
          const type = createPublicKey(pem.replace(/\\n/g, "\n")).asymmetricKeyType;
          return type === "rsa" || type === "ec";
        } catch {
          return false;
        }
      }, "must be an RSA or EC public key in PEM, starting with -----BEGIN PUBLIC KEY-----, with real or \\n line breaks")
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
  busMode: () => z.enum(["auto", "classic", "sharded"], { message: "must be auto, classic or sharded" }).default("auto"),
  podName: () =>
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,253}$/, "must be 1-253 characters of A-Z a-z 0-9 _ . -")
      .default(
        hostname()
          .replace(/[^A-Za-z0-9_.-]/g, "-")
          .slice(0, 253) || "local",
      ),
};

/** Why `path` is not a usable PEM bundle of CA certificates, or undefined when it is. */
function caFileProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return `must name a readable file, and reading it failed with ${(err as NodeJS.ErrnoException).code ?? "an error"}`;
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks) return "must be a PEM file of CA certificates, each starting with -----BEGIN CERTIFICATE-----";
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      return "holds a certificate that does not parse: check the PEM file";
    }
  }
  return undefined;
}

/**
 * One line for an operator when a listener cannot open its port, naming the variable that chose
 * it, e.g. `PORT 3000 is already in use by another process: choose another`.
 */
export function describeListenError(variable: string, host: string, port: number, err: NodeJS.ErrnoException): string {
  const where = `${variable} ${port}${host === "0.0.0.0" || host === "::" ? "" : ` on ${host}`}`;
  if (err.code === "EADDRINUSE") return `${where} is already in use by another process: choose another`;
  if (err.code === "EACCES") return `${where} needs privileges this process does not have: use a port above 1023`;
  if (err.code === "EADDRNOTAVAIL") return `${where}: HOST ${host} is not an address of this machine`;
  return `${where} cannot be opened: ${err.message}`;
}
