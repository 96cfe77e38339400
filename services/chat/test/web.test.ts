import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { SignJWT } from "jose";
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

describe("the web page in jwt mode (issue 24 #13 and hardening)", () => {
  const SECRET = "a-test-secret-that-is-long-enough-0123456789";
  const token = (sub: string, name: string) =>
    new SignJWT({ name }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt().setExpirationTime("10m").sign(new TextEncoder().encode(SECRET));
  let pod: ServiceProcess;
  let browser: Browser;

  beforeAll(async () => {
    pod = await startService("chat", { pod: "web-jwt", env: { AUTH_MODE: "jwt", JWT_SECRET: SECRET } });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllServices();
  });

  it("drops #token= from the address bar, runs under its CSP, and shows ids beside a display name two members share or that looks alike", async () => {
    const problems: string[] = [];
    const pages = await Promise.all([browser.newPage(), browser.newPage(), browser.newPage()]);
    for (const page of pages) page.on("console", (msg) => msg.type() === "error" && problems.push(msg.text()));
    const [real, impostor, bystander] = pages;
    await joinAs(real, `${pod.url}/#token=${await token("u-alice", "Alice")}`, "ignored", "lobby");
    expect(await real.evaluate(() => location.href)).toBe(`${pod.url}/`);
    await joinAs(impostor, `${pod.url}/#token=${await token("u-mallory", "Alice")}`, "ignored", "lobby");
    await joinAs(bystander, `${pod.url}/#token=${await token("u-bob", "Bob")}`, "ignored", "lobby");
    // A Cyrillic А: another name that looks the same.
    const lookalike = await browser.newPage();
    await joinAs(lookalike, `${pod.url}/#token=${await token("u-eve", "\u0410lice")}`, "ignored", "lobby");

    await bystander.waitForSelector("#members li >> nth=3");
    expect(await bystander.locator("#members li").allTextContents()).toEqual(["Alice (u-alice)", "Alice (u-mallory)", "Bob", "\u0410lice (u-eve)"]);
    await impostor.fill("#text", "it's me, Alice");
    await impostor.click("#send");
    const line = bystander.locator("#messages li", { hasText: "it's me, Alice" });
    await line.waitFor();
    expect(await line.locator(".who").textContent()).toBe("Alice (u-mallory)");
    // A name nobody else uses is shown alone.
    await bystander.fill("#text", "hi");
    await bystander.click("#send");
    const mine = real.locator("#messages li", { hasText: "hi" });
    await mine.waitFor();
    expect(await mine.locator(".who").textContent()).toBe("Bob");
    expect(problems.filter((p) => /Content Security Policy|Refused/i.test(p))).toEqual([]);
  });
});
