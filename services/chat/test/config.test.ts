import { afterAll, describe, expect, it } from "vitest";
import { startService, stopAllServices } from "@chat/testkit";

describe("configuration at start", () => {
  afterAll(stopAllServices);

  it("exits non-zero with one clear line per bad variable", async () => {
    const chat = await startService("chat", {
      wait: false,
      env: { PORT: "nope", REDIS_URL: "http://redis:6379", LOG_LEVEL: "chatty", MAX_TEXT_LENGTH: "0" },
    });
    expect(await chat.exited).toBe(1);
    const output = chat.rawOutput();
    expect(output).toMatch(/^chat: invalid configuration:/);
    expect(output).toMatch(/PORT: must be a number/);
    expect(output).toMatch(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(output).toMatch(/LOG_LEVEL: must be one of/);
    expect(output).toMatch(/MAX_TEXT_LENGTH: must be at least 1/);
  });

  it.each([
    ["jwt without a key", { AUTH_MODE: "jwt" }, /AUTH_MODE: jwt needs exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL \(none set\)/],
    ["jwt with two keys", { AUTH_MODE: "jwt", JWT_SECRET: "x".repeat(40), JWT_JWKS_URL: "https://id.example/jwks" }, /got JWT_SECRET, JWT_JWKS_URL/],
    ["a short JWT_SECRET", { AUTH_MODE: "jwt", JWT_SECRET: "short" }, /JWT_SECRET: must be at least 32 characters/],
    ["CORS_ORIGINS=*", { CORS_ORIGINS: "*" }, /CORS_ORIGINS/],
    ["an unknown AUTH_MODE", { AUTH_MODE: "none" }, /AUTH_MODE: must be open or jwt/],
    ["a negative rate limit", { RATE_LIMIT_CONNECTIONS_PER_IP: "-1" }, /RATE_LIMIT_CONNECTIONS_PER_IP/],
    ["a negative outbound budget", { MAX_CLIENT_BUFFER_BYTES: "-1" }, /MAX_CLIENT_BUFFER_BYTES/],
    ["an unknown FAST_PATH", { FAST_PATH: "on" }, /FAST_PATH: must be auto or off/],
  ])("refuses to start with %s", async (_name, env, message) => {
    const chat = await startService("chat", { wait: false, env });
    expect(await chat.exited).toBe(1);
    expect(chat.rawOutput()).toMatch(message);
  });

  it("warns loudly when anyone can connect under any name", async () => {
    const chat = await startService("chat");
    expect(chat.logs.some((l) => l.level === 40 && /AUTH_MODE=open/.test(l.msg))).toBe(true);
  });

  it("runs as a single node without REDIS_URL, and says so", async () => {
    const chat = await startService("chat");
    expect(chat.logs.some((l) => /REDIS_URL is not set/.test(l.msg))).toBe(true);
    const page = await fetch(chat.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js"></script>');
  });
});
