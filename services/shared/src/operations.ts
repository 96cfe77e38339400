import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createTerminus } from "@godaddy/terminus";
import { collectDefaultMetrics, type Registry } from "prom-client";
import { registerEventLoopLag } from "./event-loop-lag.js";
import type { Logger } from "./logger.js";

export interface OperationsOptions {
  /** The probe port: `/livez`, `/readyz` and `/metrics`. Never exposed by the LoadBalancer. */
  port: number;
  host: string;
  log: Logger;
  /** The service's metrics; Node's and the process's default metrics are added to it. */
  registry: Registry;
  /** Throws, with a reason, while the service cannot serve (Redis gone, say). */
  ready: () => void | Promise<void>;
  /**
   * Seconds between failing readiness and starting to drain, so that the Service stops sending
   * new connections before the old ones are moved.
   * @default 5
   */
  shutdownDelaySeconds?: number;
  /** Drains the service's work and closes its connections; the process then exits 0. */
  drain: () => Promise<void>;
  /**
   * Milliseconds after which a `drain()` that has not finished is abandoned (with a warning) and
   * the process exits 0 anyway, so that shutdown always ends before the orchestrator's SIGKILL.
   * @default undefined (wait for drain())
   */
  drainTimeoutMs?: number;
  /**
   * `/livez` fails when the event loop has not ticked for this long.
   * @default 10000
   */
  maxEventLoopLagMs?: number;
  /** More read-only JSON pages for operators, by path (e.g. `/debug/bus`). */
  debug?: Record<string, () => unknown>;
}

export interface Operations {
  server: Server;
  port: number;
}

/** Why a probe failed; terminus answers 503 with it. */
class ProbeFailure extends Error {
  constructor(readonly causes: string) {
    super(causes);
  }
}

/**
 * The probe server and the shutdown sequence, with @godaddy/terminus:
 * SIGTERM → `/readyz` fails at once → wait `shutdownDelaySeconds` → `drain()` → exit 0.
 * `/livez` keeps passing while draining: the process is healthy, only leaving.
 */
export async function startOperations(options: OperationsOptions): Promise<Operations> {
  const { registry, log, shutdownDelaySeconds = 5, maxEventLoopLagMs = 10_000 } = options;
  // prom-client's own event-loop-delay monitor samples every 10 ms (see event-loop-lag.ts): its
  // gauges are replaced below, and its timer is left to wake once a minute.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 60_000 });
  registerEventLoopLag(registry);
  // prom-client names three gauges `*_total`, which Prometheus reserves for counters (promtool
  // flags them). The same figures remain, split by type, in nodejs_active_{handles,requests,resources}.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(name);
  }

  let lastTick = Date.now();
  const ticker = setInterval(() => (lastTick = Date.now()), 500);
  ticker.unref();

  let shuttingDown = false;
  const server = createProbeServer(options);
  const probe = probeLogger(log);

  createTerminus(server, {
    healthChecks: {
      "/livez": () =>
        probe("alive", () => {
          const lag = Date.now() - lastTick;
          if (lag > maxEventLoopLagMs) throw new ProbeFailure(`event loop stalled for ${lag} ms`);
        }),
      "/readyz": () =>
        probe("ready", async () => {
          if (shuttingDown) throw new ProbeFailure("shutting down");
          await options.ready();
        }),
      verbatim: true,
    },
    // Liveness must keep passing while the pod drains; readiness fails through the check above.
    sendFailuresDuringShutdown: false,
    signals: ["SIGTERM", "SIGINT"],
    useExit0: true,
    // The probe server's own keep-alive connections (a Prometheus scrape) get this long to end.
    timeout: 500,
    // Failed probes are logged by probe() above, once per change.
    logger: (msg, err) => msg !== "healthcheck failed" && log.error({ err }, msg),
    beforeShutdown: async () => {
      shuttingDown = true;
      log.info({ delaySeconds: shutdownDelaySeconds }, "shutting down: readiness fails, waiting before draining");
      await new Promise((resolve) => setTimeout(resolve, shutdownDelaySeconds * 1000));
      await boundedDrain(options, log);
    },
    onShutdown: async () => log.info("bye"),
  });

  // A port that cannot be opened rejects (the caller says which variable chose it), never an
  // unhandled 'error' event with a stack trace.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** `/metrics`, the debug pages and a 404 that lists the paths; terminus adds `/livez` and `/readyz`. */
function createProbeServer({ registry, log, debug = {} }: OperationsOptions): Server {
  return createServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
        (err: Error) => {
          log.error({ err }, "metrics collection failed");
          res.writeHead(500).end("metrics collection failed\n");
        },
      );
      return;
    }
    const page = req.method === "GET" && req.url && Object.hasOwn(debug, req.url) ? debug[req.url] : undefined;
    if (page) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(page()));
      return;
    }
    const paths = ["/livez", "/readyz", "/metrics", ...Object.keys(debug)];
    res.writeHead(404, { "content-type": "text/plain" }).end(`not found: try ${paths.slice(0, -1).join(", ")} or ${paths.at(-1)}\n`);
  });
}

/**
 * Runs a probe's check. Probes are polled every few seconds: a failure is logged when the state
 * changes (with its reason, without a stack), not on every poll.
 */
function probeLogger(log: Logger) {
  const failing: Record<string, string | undefined> = {};
  return async function probe(name: "alive" | "ready", check: () => void | Promise<void>): Promise<{ status: string }> {
    try {
      await check();
    } catch (err) {
      const reason = (err as Error).message;
      if (failing[name] !== reason) log.warn({ probe: name, reason }, `not ${name}: ${reason}`);
      failing[name] = reason;
      throw err;
    }
    if (failing[name] !== undefined) log.info({ probe: name, was: failing[name] }, `${name} again`);
    failing[name] = undefined;
    return { status: name };
  };
}

/** Runs `drain()`, for at most `drainTimeoutMs`; a failure or an overrun is logged, never thrown. */
async function boundedDrain({ drain, drainTimeoutMs }: OperationsOptions, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<"overrun">((resolve) => {
    if (drainTimeoutMs !== undefined) timer = setTimeout(resolve, drainTimeoutMs, "overrun");
  });
  try {
    const result = await Promise.race([drain().then(() => "done" as const), overrun]);
    if (result === "overrun") log.warn({ drainTimeoutMs }, "drain did not finish in time: exiting anyway");
  } catch (err) {
    log.error({ err }, "drain failed: exiting anyway");
  } finally {
    clearTimeout(timer);
  }
}

export { ProbeFailure };
