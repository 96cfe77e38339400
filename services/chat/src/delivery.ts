import type { Logger } from "@chat/shared";
import { coalesceWrites } from "./coalesce.js";
import { fastPaths, handleWriter, registerFastPathGauge, type FastPaths } from "./compat/index.js";
import type { ChatConfig } from "./config.js";
import { attachFanout } from "./fanout.js";
import type { ChatMetrics } from "./metrics.js";
import { releaseRequests } from "./release-requests.js";
import { guardSlowConsumers, type SlowConsumers } from "./slow-consumer.js";
import type { ChatServerIo } from "./socket-types.js";

/** How this pod writes to its clients: the fast paths in use and the outbound budget. */
export interface Delivery {
  paths: FastPaths;
  /** Undefined when `MAX_CLIENT_BUFFER_BYTES` is 0. */
  slowConsumers?: SlowConsumers;
}

/**
 * Installs the write path: the per-connection outbound budget, the fan-out of broadcasts (direct
 * writes, when the start-up checks pass), write coalescing and the release of handshake requests.
 *
 * Must run after `attachBus`: the fan-out wraps the namespace's adapter, and `attachBus` replaces
 * the in-memory adapter with the Redis one. Installed on the in-memory adapter, it would be lost.
 */
export function installDelivery(io: ChatServerIo, config: ChatConfig, log: Logger, metrics: ChatMetrics): Delivery {
  const paths = fastPaths(config.FAST_PATH, log);
  registerFastPathGauge(metrics.registry, paths);
  const slowConsumers = guardSlowConsumers(io, { maxBytes: config.MAX_CLIENT_BUFFER_BYTES, log, onClose: () => metrics.slowConsumer() });
  attachFanout(io.of("/").adapter, {
    direct: paths.direct_write,
    overBudget: slowConsumers?.overBudget,
    maxBytes: slowConsumers ? config.MAX_CLIENT_BUFFER_BYTES : Infinity,
    observe: metrics.observeBroadcast,
    write: (paths.handle_write && handleWriter()) || undefined,
  });
  if (paths.coalesce) coalesceWrites(io, { onCoalesced: (packets) => metrics.coalesced(packets) });
  if (paths.release_requests) releaseRequests(io);
  return { paths, slowConsumers };
}
