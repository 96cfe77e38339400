import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  /** The service's name, e.g. `chat`. */
  service: string;
  /** The pod (or host) the process runs on; it is on every line. */
  pod: string;
  /** @default "info" */
  level?: LevelWithSilent;
}

/**
 * Structured JSON logs on stdout. Message texts and tokens are never logged: the `redact` paths
 * are a second line of defence for a field logged by mistake.
 */
export function createLogger({ service, pod, level = "info" }: LoggerOptions): Logger {
  return pino({
    level,
    base: { service, pod },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["text", "*.text", "token", "*.token", "auth.token", "authorization", "*.authorization"],
      censor: "[redacted]",
    },
  });
}
