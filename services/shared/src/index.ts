export * from "./config.js";
export * from "./logger.js";
export * from "./protocol.js";
export * from "./redis.js";
