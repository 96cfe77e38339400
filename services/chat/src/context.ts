import type { Server } from "socket.io";
import type { Redis } from "ioredis";
import type { Logger, RateLimit, RoomLog, StorageQuota } from "@chat/shared";
import type { ChatConfig } from "./config.js";
import type { ChatMetrics } from "./metrics.js";
import type { Presence } from "./presence.js";
import type { DmDirectory } from "./dms.js";

/** What the event handlers need, built once by `createChatServer`. */
export interface ChatContext {
  io: Server;
  config: ChatConfig;
  log: Logger;
  presence: Presence;
  /** Every room's log: messages are appended to it, and published by it, before they are acked. */
  history: RoomLog;
  /** Rate limits; a limit that is turned off is undefined. */
  limits: {
    messages?: RateLimit;
    joins?: RateLimit;
    userReads?: RateLimit;
    connections?: RateLimit;
    userConnections?: RateLimit;
    members?: RateLimit;
    storage?: StorageQuota;
  };
  /** The Redis connections, when scaled out. */
  redis?: { pub: Redis; sub: Redis };
  /** Set once built; handlers count what they serve. */
  metrics?: ChatMetrics;
  /** Who may join each direct-message room. */
  dms: DmDirectory;
  /** True when a message sent now would reach every pod. Always true on a single node. */
  busReady(): boolean;
}
