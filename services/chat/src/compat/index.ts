import { Gauge, type Registry } from "prom-client";
import type { Logger } from "@chat/shared";
import { checkBroadcast } from "./adapter.js";
import { checkWs } from "./engine.js";
import { checkHandleWrites } from "./node.js";

/**
 * The compat layer: every read or write of a private field of socket.io, engine.io, ws,
 * socket.io-adapter, ioredis and Node's TCP sockets lives in this folder, and nowhere else. Each was read from the
 * exact versions pinned in services/chat/package.json (below). Upgrading any of them is a
 * deliberate change: re-read the fields each file names, then run
 * services/chat/test/fast-path.test.ts, which compares the bytes on the wire of the fast paths
 * with the public ones. Each function checks the shape it relies on and answers "not here" (the
 * caller then takes the public path) rather than assuming it; `fastPaths()` runs the checks that
 * need no client once at start-up, so a mismatch shows in the log and in `chat_fast_path{path}`.
 */
export const READ_FROM = {
  "socket.io": "4.8.4",
  "engine.io": "6.6.12",
  ws: "8.21.3",
  "socket.io-adapter": "2.5.8",
  "@socket.io/redis-adapter": "8.3.0",
  ioredis: "5.11.1",
  // Not pinned by package.json: the image's Node (Dockerfile.chat) and the engines field are.
  node: "20.20.2",
} as const;

export * from "./adapter.js";
export * from "./engine.js";
export * from "./node.js";
export * from "./redis.js";

/**
 * The fast paths, each on (true) or on the public path (false):
 * - `direct_write`: a broadcast's frame written straight to each recipient's TCP socket (fanout.ts);
 * - `handle_write`: those writes made on the socket's libuv handle, past Node's stream code (node.ts);
 * - `coalesce`: a batch of queued packets corked into one write (coalesce.ts);
 * - `release_requests`: an upgrade's request and response freed after the handshake (release-requests.ts).
 */
export type FastPath = "direct_write" | "handle_write" | "coalesce" | "release_requests";
export type FastPaths = Record<FastPath, boolean>;

/**
 * Which fast paths this process uses: none with `FAST_PATH=off`; with `auto`, each whose start-up
 * check passes. A failed check logs one warning and leaves that path on the public one.
 */
export function fastPaths(mode: "auto" | "off", log: Logger): FastPaths {
  if (mode === "off") {
    log.info("FAST_PATH=off: every delivery goes through Socket.IO's and Engine.IO's public path");
    return { direct_write: false, handle_write: false, coalesce: false, release_requests: false };
  }
  const ws = checkWs();
  const direct = ws && checkBroadcast();
  const checks: FastPaths = { direct_write: direct, handle_write: direct && checkHandleWrites(), coalesce: ws, release_requests: true };
  for (const [path, ok] of Object.entries(checks)) {
    if (!ok) log.warn({ path, readFrom: READ_FROM }, "fast path off: the library internals it relies on are not as expected; using the public path");
  }
  return checks;
}

/** `chat_fast_path{path}`: 1 when a fast path is in use, 0 when it is on the public path. */
export function registerFastPathGauge(registry: Registry, paths: FastPaths): void {
  new Gauge({
    name: "chat_fast_path",
    help: "1 when a fast path is in use, 0 when it runs on the public path (FAST_PATH=off or a failed start-up check), by path.",
    labelNames: ["path"],
    registers: [registry],
    collect() {
      for (const [path, on] of Object.entries(paths)) this.set({ path }, on ? 1 : 0);
    },
  });
}
