import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, env, parseEnv } from "../src/config.js";

const schema = z.object({
  PORT: env.port(3000),
  REDIS_URL: env.redisUrl(),
  LOG_LEVEL: env.logLevel(),
  LIMIT: env.positiveInt(10, 100),
});

describe("parseEnv", () => {
  it("applies defaults, and treats empty values as unset", () => {
    expect(parseEnv(schema, { PORT: "", LIMIT: " " })).toEqual({ PORT: 3000, LOG_LEVEL: "info", LIMIT: 10 });
  });

  it("reads and coerces values", () => {
    expect(parseEnv(schema, { PORT: "8080", REDIS_URL: "redis://:pw@redis:6379/0", LOG_LEVEL: "debug", LIMIT: "7" })).toEqual({
      PORT: 8080,
      REDIS_URL: "redis://:pw@redis:6379/0",
      LOG_LEVEL: "debug",
      LIMIT: 7,
    });
  });

  it("names every bad variable in one error, without echoing credentials", () => {
    let error: unknown;
    try {
      parseEnv(schema, { PORT: "http", REDIS_URL: "mysql://root:hunter2@db", LOG_LEVEL: "loud", LIMIT: "1000" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/^PORT: must be a number/);
    expect(problems[1]).toMatch(/^REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(problems[1]).not.toContain("hunter2");
    expect(problems[2]).toMatch(/^LOG_LEVEL: must be one of/);
    expect(problems[3]).toMatch(/^LIMIT: must be at most 100/);
  });

  it.each([["-1"], ["65536"], ["1.5"]])("refuses PORT=%s", (port) => {
    expect(() => parseEnv(schema, { PORT: port })).toThrow(ConfigError);
  });
});
