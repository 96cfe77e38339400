export * from "./config.js";
export * from "./logger.js";
export * from "./protocol.js";
export * from "./redis.js";
export * from "./notification.js";
export * from "./room-log.js";
export * from "./operations.js";
export * from "./rate-limit.js";
