import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { launchChromium, repoRoot, startRedis, startService, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";

const outputDir = join(repoRoot, "test-output");

async function joinAs(page: Page, url: string, name: string, room: string): Promise<void> {
  await page.goto(url);
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#join");
  await page.waitForSelector(`#room-title:text("#${room}")`);
  await page.waitForSelector("#send:enabled");
}

describe("the web page in headless Chromium", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let browser: Browser;

  beforeAll(async () => {
    redis = await startRedis();
    pods = await Promise.all([0, 1].map((i) => startService("chat", { pod: `web-${i}`, env: { REDIS_URL: redis.url } })));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllServices();
    await redis?.dispose();
  });

  it("lets two people on two different pods talk", async () => {
    const ann = await browser.newPage();
    const bob = await browser.newPage();
    await joinAs(ann, pods[0]!.url, "Ann", "lobby");
    await joinAs(bob, pods[1]!.url, "Bob", "lobby");

    // Ann hears Bob arrive (a presence event across pods), and Bob's join ack listed Ann.
    await ann.waitForSelector('#members li:text-is("Bob")');
    expect(await bob.locator("#members li").allTextContents()).toEqual(["Ann", "Bob"]);

    await ann.fill("#text", "Hello from pod 0 <b>not bold</b>");
    await ann.click("#send");
    const line = bob.locator("#messages li", { hasText: "Hello from pod 0" });
    await line.waitFor();
    expect(await line.locator(".who").textContent()).toBe("Ann");
    // Text is rendered as text, never as markup.
    expect(await line.locator("b").count()).toBe(0);
    await expect.poll(() => ann.inputValue("#text")).toBe("");

    await bob.fill("#text", "Hi Ann, from pod 1");
    await bob.press("#text", "Enter");
    await ann.locator("#messages li", { hasText: "Hi Ann, from pod 1" }).waitFor();

    mkdirSync(outputDir, { recursive: true });
    await bob.screenshot({ path: join(outputDir, "web-chat.png"), fullPage: true });
  });

  it("shows a clear error for a name the server refuses", async () => {
    const page = await browser.newPage();
    await page.goto(pods[0]!.url);
    await page.fill("#name", "   ");
    await page.evaluate(() => document.getElementById("name")!.removeAttribute("required"));
    await page.click("#join");
    await page.waitForSelector("#error:visible");
    expect(await page.textContent("#error")).toMatch(/Cannot connect: auth\.name/);
  });
});
