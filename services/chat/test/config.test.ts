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

  it("runs as a single node without REDIS_URL, and says so", async () => {
    const chat = await startService("chat");
    expect(chat.logs.some((l) => /REDIS_URL is not set/.test(l.msg))).toBe(true);
    const page = await fetch(chat.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js"></script>');
  });
});
