import type { AddressInfo, Server } from "node:net";
import type { Cluster, Redis } from "ioredis";
import type { LevelWithSilent } from "pino";
import type { Registry } from "prom-client";
import type { BusMode } from "./bus.js";
import { settleBusMode, type BusModeSetting } from "./bus-mode.js";
import { ConfigError, describeListenError } from "./config.js";
import { DeploymentConflict } from "./deployment-setting.js";
import { createLogger, type Logger } from "./logger.js";
import { ProbeFailure, startOperations } from "./operations.js";

/** The variables `runService` reads from every service's configuration. */
export interface ServiceConfig {
  PORT: number;
  HOST: string;
  PROBE_PORT: number;
  SHUTDOWN_DELAY_SECONDS: number;
  LOG_LEVEL: LevelWithSilent;
  POD_NAME: string;
  BUS_MODE: BusModeSetting;
}

/** A service once it is built: `runService` listens on `PORT` with its server. */
export interface RunningService {
  /** The public listener (HTTP or HTTPS), not listening yet. */
  httpServer: Server;
  /** False while the service cannot serve (Redis unreachable): readiness then fails. */
  ready(): boolean;
  /** Drains the service's work and closes its listener; the connections are closed after it. */
  drain(): Promise<void>;
  /** More fields for the "is up" log line. */
  upFields?: Record<string, unknown>;
  /** @default "http" */
  scheme?: "http" | "https";
}

/** What a service connects to before it knows its bus mode. */
export interface ServiceConnections {
  /** Where the bus mode is settled; undefined for a single node without Redis. */
  redis: Redis | Cluster | undefined;
  /** The service's metrics, served on the probe port. */
  registry: Registry;
  /** See `OperationsOptions.drainTimeoutMs`. @default undefined (wait for the drain) */
  drainTimeoutMs?: number;
  /** See `OperationsOptions.debug`. @default none */
  debug?: Record<string, () => unknown>;
  /** Builds the service once the bus mode is known (undefined without Redis). May throw a `DeploymentConflict`. */
  start(busMode: BusMode | undefined): Promise<RunningService>;
  /** Closes the connections, after the drain. */
  close(): Promise<void>;
}

export interface ServiceDefinition<C extends ServiceConfig> {
  /** `chat` or `notifier`: the logs' `service` and the prefix of every line on stderr. */
  name: string;
  /** Reads the environment; throws `ConfigError`. */
  loadConfig: () => C;
  /** Opens the connections; nothing listens yet. */
  connect: (config: C, log: Logger) => ServiceConnections;
}

/**
 * The start-up shell of every service: its composition root hands over what differs, and this
 * owns the rest, so that both behave alike. A configuration error, a port that cannot be opened,
 * a conflict with the deployment (`DeploymentConflict`) or a failed start ends the process with
 * exit code 1 and lines a person can act on; probes and metrics come up first, and say why the
 * service is not ready while it waits for Redis to learn the bus mode; an unhandled rejection is
 * logged, never fatal; SIGTERM drains (operations.ts) and exits 0.
 */
export async function runService<C extends ServiceConfig>({ name, loadConfig, connect }: ServiceDefinition<C>): Promise<void> {
  const config = configure(name, loadConfig);
  const log = createLogger({ service: name, pod: config.POD_NAME, level: config.LOG_LEVEL });
  // Last line of defence: a rejected promise from a library (a publish during a Redis outage,
  // say) is logged, never allowed to take every client of this process down.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));
  /** A port that cannot be opened ends the process with one line naming its variable. */
  const cannotListen = (variable: string, port: number) => (err: NodeJS.ErrnoException) => {
    console.error(`${name}: ${describeListenError(variable, config.HOST, port, err)}`);
    process.exit(1);
  };

  const connections = connect(config, log);
  // Built once the bus mode is known, which Redis keeps: meanwhile the probes run and say why
  // the service is not ready yet.
  let running: RunningService | undefined;
  const operations = await startOperations({
    port: config.PROBE_PORT,
    host: config.HOST,
    log,
    registry: connections.registry,
    shutdownDelaySeconds: config.SHUTDOWN_DELAY_SECONDS,
    drainTimeoutMs: connections.drainTimeoutMs,
    debug: connections.debug,
    ready() {
      if (!running) throw new ProbeFailure("waiting for Redis to learn the message bus mode");
      if (!running.ready()) throw new ProbeFailure("Redis is unreachable");
    },
    async drain() {
      await running?.drain();
      await connections.close();
    },
  }).catch(cannotListen("PROBE_PORT", config.PROBE_PORT));

  running = await startOrExit(connections, config.BUS_MODE, log);
  const { httpServer, upFields, scheme = "http" } = running;
  httpServer.once("error", cannotListen("PORT", config.PORT));
  httpServer.listen(config.PORT, config.HOST, () => {
    const { port } = httpServer.address() as AddressInfo;
    const host = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
    log.info(
      { port, probePort: operations.port, ...upFields },
      `${name} is up at ${scheme}://${host}:${port}/ (probes and metrics on port ${operations.port})`,
    );
  });
}

function configure<C>(name: string, loadConfig: () => C): C {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${name}: ${err.message}`);
    process.exit(1);
  }
}

/** Settles the bus mode and builds the service; what no retry would fix ends the process with 1. */
async function startOrExit(connections: ServiceConnections, setting: BusModeSetting, log: Logger): Promise<RunningService> {
  try {
    const busMode = connections.redis && (await settleBusMode(connections.redis, setting, log));
    return await connections.start(busMode);
  } catch (err) {
    if (err instanceof DeploymentConflict) log.fatal({ conflict: err.name }, err.message);
    else log.fatal({ err }, "could not start");
    process.exit(1);
  }
}
