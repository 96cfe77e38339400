import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.js";
import { killOnExit } from "./children.js";

/** The repository root, from services/testkit/dist. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A built service (`services/<name>/dist/main.js`) running as a real child process. */
export interface ServiceProcess {
  name: string;
  pod: string;
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The probe port (`/livez`, `/readyz`, `/metrics`). */
  probePort: number;
  /** `http://127.0.0.1:<probePort>` */
  probeUrl: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: LogLine[];
  /** Everything it wrote that was not a JSON log line (stderr, crash traces). */
  rawOutput: () => string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
  /** Sends a signal; with SIGKILL, waits for the process to be gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Waits for a log line that matches. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

export interface StartServiceOptions {
  /** Environment on top of a minimal one (PATH, HOME); `PORT` defaults to 0 (a free port). */
  env?: Record<string, string | undefined>;
  /** `POD_NAME`, also used in error messages. */
  pod?: string;
  /**
   * Wait until it listens and its `/readyz` passes (Redis connected), the way Kubernetes would
   * before sending it traffic. `false` returns at once (for processes expected to fail).
   */
  wait?: boolean;
}

const running = new Set<ServiceProcess>();

export async function startService(
  name: "chat" | "notifier",
  { env = {}, pod = `${name}-${running.size}`, wait = true }: StartServiceOptions = {},
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [`services/${name}/dist/main.js`], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: "0",
      PROBE_PORT: "0",
      // Tests drain fast unless they say otherwise.
      SHUTDOWN_DELAY_SECONDS: "0",
      DRAIN_SECONDS: "1",
      LOG_LEVEL: "info",
      POD_NAME: pod,
      // Every test client comes from 127.0.0.1; tests of the per-address limit set it themselves.
      RATE_LIMIT_CONNECTIONS_PER_IP: "0",
      MAX_OPEN_PER_ADDRESS: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(child);
  const logs: LogLine[] = [];
  let raw = "";
  let pending = "";
  child.stdout.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        raw += `${line}\n`;
      }
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (raw += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")));

  const service: ServiceProcess = {
    name,
    pod,
    port: 0,
    url: "",
    probePort: 0,
    probeUrl: "",
    child,
    logs,
    rawOutput: () => raw,
    exited,
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (signal === "SIGKILL") await exited;
    },
    async waitForLog(match, timeoutMs = 30_000) {
      let found: LogLine | undefined;
      await waitFor(() => (found = logs.find(match)) !== undefined, {
        timeoutMs,
        what: () => `a matching log line from ${pod}\n${raw.slice(-2000)}`,
      });
      return found!;
    },
  };
  running.add(service);
  void exited.then(() => running.delete(service));
  if (!wait) return service;

  const up = await Promise.race([
    service.waitForLog((line) => typeof line.port === "number" && / is up at /.test(line.msg), 40_000),
    exited.then((code) => {
      throw new Error(`${pod} exited with ${code} before listening:\n${raw}`);
    }),
  ]);
  service.port = up.port as number;
  service.url = `http://127.0.0.1:${service.port}`;
  if (typeof up.probePort === "number") {
    service.probePort = up.probePort;
    service.probeUrl = `http://127.0.0.1:${up.probePort}`;
    await waitFor(() => isReady(service.probeUrl), { timeoutMs: 40_000, what: () => `${pod} to be ready\n${raw.slice(-2000)}` });
  }
  return service;
}

async function isReady(probeUrl: string): Promise<boolean> {
  try {
    return (await fetch(`${probeUrl}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

/** SIGKILLs every service process still running (for `afterAll`). */
export async function stopAllServices(): Promise<void> {
  await Promise.all([...running].map((service) => service.kill("SIGKILL")));
}

/**
 * The value of one series on a service's `/metrics`, e.g. `chat_rate_limited_total{kind="message"}`;
 * 0 when it is not there yet (a counter with no observations).
 */
export async function metricValue(service: Pick<ServiceProcess, "probeUrl">, series: string): Promise<number> {
  const text = await (await fetch(`${service.probeUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/**
 * For a timeout's message: each service's warnings and errors (pino level ≥ 40, the last `lines`)
 * and the tail of what it wrote that was not a log line, so a failure on CI says what the pods saw.
 */
export function describeServices(services: ServiceProcess[], lines = 10): string {
  return services
    .map((service) => {
      const warnings = service.logs.filter((line) => line.level >= 40).slice(-lines);
      const raw = service.rawOutput().slice(-1000);
      const state = service.child.exitCode !== null || service.child.signalCode !== null ? "exited" : "running";
      return [`--- ${service.pod} (${state})`, ...warnings.map((line) => JSON.stringify(line)), ...(raw ? [raw] : [])].join("\n");
    })
    .join("\n");
}
