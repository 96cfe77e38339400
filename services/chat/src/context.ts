import type { Server } from "socket.io";
import type { Redis } from "ioredis";
import type { Logger } from "@chat/shared";
import type { ChatConfig } from "./config.js";
import type { Presence } from "./presence.js";

/** What the event handlers need, built once by `createChatServer`. */
export interface ChatContext {
  io: Server;
  config: ChatConfig;
  log: Logger;
  presence: Presence;
  /** The Redis connections, when scaled out. */
  redis?: { pub: Redis; sub: Redis };
  /** True when a message sent now would reach every pod. Always true on a single node. */
  busReady(): boolean;
}
