export * from "./clients.js";
export * from "./redis.js";
export * from "./service.js";
export * from "./wait.js";
export * from "./browser.js";
export * from "./balancer.js";
export * from "./prometheus.js";
export * from "./redis-cluster.js";
