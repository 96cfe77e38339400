import type { RedisClient } from "@chat/shared";
import type { Logger } from "@chat/shared";
import { createAuthenticator } from "./auth.js";
import { compileTrust, createClientAddress, requestAddress } from "./client-address.js";
import type { ChatConfig } from "./config.js";
import type { ConnectionCounts } from "./connection-cap.js";
import { handshake } from "./handshake.js";
import { guardServer } from "./http-guard.js";
import type { Limits } from "./limits.js";
import { membersApi } from "./members-api.js";
import type { ChatMetrics } from "./metrics.js";
import type { Presence } from "./presence.js";
import type { Transport } from "./transport.js";

export interface AdmissionDeps {
  config: ChatConfig;
  log: Logger;
  limits: Limits;
  metrics: Pick<ChatMetrics, "rateLimited">;
  presence: Pick<Presence, "members">;
  connections: ConnectionCounts;
  /** Where revoked tokens are listed; without Redis nothing is revoked. */
  redis?: RedisClient;
  /** True while the pod drains: new connections go elsewhere. */
  draining(): boolean;
}

/**
 * Who gets in, and how often: the per-address socket caps on the HTTP server, the members
 * endpoint, and the Socket.IO handshake (origin, draining, token, revocation, rates, connection cap).
 */
export function admit({ app, httpServer, io }: Transport, deps: AdmissionDeps): void {
  const { config, log, limits, metrics } = deps;
  const authenticate = createAuthenticator(config);
  const addressOfRequest = requestAddress(config.TRUST_PROXY);
  const trusted = compileTrust(config.TRUST_PROXY);
  guardServer(httpServer, io, {
    maxPerAddress: config.MAX_OPEN_PER_ADDRESS,
    clientAddress: addressOfRequest,
    // With a hop count every peer is believed, so no peer can be told apart as a proxy: the
    // socket cap then counts the peers themselves only when nothing is trusted.
    isProxy: (address) => ("proxies" in config.TRUST_PROXY ? trusted(address, 0) : config.TRUST_PROXY.hops > 0),
    onRefused: (what) => metrics.rateLimited.inc({ kind: what === "socket" ? "open_socket" : "open_session" }),
  });
  membersApi(app, {
    authMode: config.AUTH_MODE,
    presence: deps.presence,
    redis: deps.redis,
    authenticate,
    clientAddress: addressOfRequest,
    limit: limits.members,
    failures: limits.connections,
  });

  if (config.AUTH_MODE === "open") log.warn("AUTH_MODE=open: anyone can connect under any name. Use AUTH_MODE=jwt in production");
  if ("hops" in config.TRUST_PROXY && config.TRUST_PROXY.hops > 0) {
    log.warn(`TRUST_PROXY=${config.TRUST_PROXY.hops} believes X-Forwarded-For from any peer; list the proxies' addresses or CIDRs instead`);
  }
  const middleware = handshake({
    config,
    connections: deps.connections,
    redis: deps.redis,
    metrics,
    log,
    authenticate,
    clientAddress: createClientAddress(config.TRUST_PROXY),
    addressLimit: limits.connections,
    userLimit: limits.userConnections,
    draining: () => deps.draining(),
  });
  // The middleware answers every failure through `next` itself; only `next` throwing could reject
  // it, and that is logged rather than left as an unhandled rejection that ends the process.
  io.use((socket, next) => {
    middleware(socket, next).catch((err: unknown) => log.error({ sid: socket.id, err }, "handshake middleware failed"));
  });
}
