import { describe, expect, it } from "vitest";
import { ConfigError } from "@chat/shared";
import { loadConfig } from "../src/config.js";

const base = { REDIS_URL: "redis://127.0.0.1:6379", NOTIFIER_API_KEYS: "test-key-0123456789abcdef" };
const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig({ ...base, ...env });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
};

describe("webhook configuration", () => {
  it("is off by default, with the membership events listed and the message events off", () => {
    const config = loadConfig(base);
    expect(config.WEBHOOK_URLS).toEqual([]);
    expect(config.WEBHOOK_EVENTS).toEqual(["room.occupied", "room.vacated", "member.joined", "member.left"]);
  });

  it("reads lists of URLs, secrets and events", () => {
    const config = loadConfig({
      ...base,
      WEBHOOK_URLS: "https://a.example.com/hook, http://b.internal:8080/x",
      WEBHOOK_SECRET: "new-secret-0123456789,old-secret-0123456789",
      WEBHOOK_EVENTS: "message.created,room.occupied",
    });
    expect(config.WEBHOOK_URLS).toEqual(["https://a.example.com/hook", "http://b.internal:8080/x"]);
    expect(config.WEBHOOK_SECRET).toHaveLength(2);
    expect(config.WEBHOOK_EVENTS).toEqual(["message.created", "room.occupied"]);
  });

  it("refuses URLs without a secret, short secrets, other schemes and unknown events, one line each", () => {
    expect(problems({ WEBHOOK_URLS: "https://a.example.com/hook" })).toEqual([expect.stringMatching(/^WEBHOOK_SECRET: is required with WEBHOOK_URLS/)]);
    const lines = problems({ WEBHOOK_URLS: "ftp://a.example.com/", WEBHOOK_SECRET: "short", WEBHOOK_EVENTS: "room.occupied,room.exploded" });
    expect(lines).toEqual([
      expect.stringMatching(/^WEBHOOK_URLS: every URL must be an http:\/\/ or https:\/\/ URL/),
      expect.stringMatching(/^WEBHOOK_SECRET: every secret must be at least 16 characters/),
      expect.stringMatching(/^WEBHOOK_EVENTS: every event must be one of room.occupied/),
    ]);
    expect(lines.join("\n")).not.toContain("short");
  });
});
