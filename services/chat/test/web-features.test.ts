import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  launchChromium,
  repoRoot,
  startBalancer,
  startRedis,
  startService,
  stopAllServices,
  type Balancer,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import { dmRoom, type Ack } from "@chat/shared";

// Issue 19's web page, driven in Chromium by two or three people on 2 pods. Screenshots go to
// test-output/ (web-desktop.png, web-dark.png, web-mobile.png); the README shows web-desktop.png,
// copied to docs/web-chat.png.

const outputDir = join(repoRoot, "test-output");
const WAIT = { timeout: 30_000 };

async function joinAs(page: Page, url: string, name: string, room: string): Promise<void> {
  await page.goto(url);
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#join");
  await page.waitForSelector(`#room-title:text("#${room}")`, WAIT);
  await page.waitForSelector("#send:enabled", WAIT);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await page.locator("#messages li", { hasText: text }).first().waitFor(WAIT);
}

const line = (page: Page, text: string) => page.locator("#messages li.msg", { hasText: text });
const roomButton = (page: Page, label: string) => page.locator("#room-list .open", { hasText: label });

/** WCAG contrast of each matching element's text on the background it is drawn on. */
function contrasts(page: Page, selectors: string[]): Promise<{ selector: string; ratio: number }[]> {
  return page.evaluate((list) => {
    const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!);
    };
    const background = (el: Element | null): number[] => {
      for (; el; el = el.parentElement) {
        const c = rgb(getComputedStyle(el).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3]! > 0)) return c.slice(0, 3);
      }
      return rgb(getComputedStyle(document.documentElement).backgroundColor);
    };
    return list.flatMap((selector) =>
      Array.from(document.querySelectorAll(selector))
        .slice(0, 3)
        .map((el) => {
          const a = lum(rgb(getComputedStyle(el).color));
          const b = lum(background(el));
          return { selector, ratio: Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 100) / 100 };
        }),
    );
  }, selectors);
}

describe("the web page's conversations in Chromium, across 2 pods", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let quotaPod: ServiceProcess;
  let balancer: Balancer;
  let browser: Browser;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, RATE_LIMIT_EVENTS_PER_SECOND: "0", RATE_LIMIT_MESSAGES_PER_SECOND: "0", RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: "0" };
    pods = await Promise.all([0, 1].map((i) => startService("chat", { pod: `web-${i}`, env })));
    // One more pod whose storage quota a user quickly spends: its refusal is a `rate_limited` with a wait.
    quotaPod = await startService("chat", { pod: "web-quota", env: { ...env, QUOTA_USER_BYTES: "300", QUOTA_WINDOW_SECONDS: "600" } });
    balancer = await startBalancer([pods[1]!.port]);
    browser = await launchChromium();
    mkdirSync(outputDir, { recursive: true });
  });

  afterAll(async () => {
    closeAllClients();
    await browser?.close();
    await balancer?.close();
    await stopAllServices();
    await redis?.dispose();
  });

  it("lets people switch rooms with unread badges, message each other directly, see typing, and edit and delete inline", async () => {
    const ann = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const bob = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await joinAs(ann, pods[0]!.url, "Ann", "lobby");
    await joinAs(bob, pods[1]!.url, "Bob", "lobby");

    // Grouping: Ann's two messages in a row share one name, under a day separator.
    await say(ann, "Morning all");
    await say(ann, "Coffee is ready");
    await line(bob, "Coffee is ready").waitFor(WAIT);
    expect(await line(bob, "Morning all").getAttribute("class")).toContain("first");
    expect(await line(bob, "Coffee is ready").getAttribute("class")).toContain("cont");
    expect(await bob.locator("#messages li.day").first().textContent()).toBe("Today");

    // Typing: Bob types, Ann sees it; his message clears it.
    await bob.fill("#text", "Thanks");
    await bob.press("#text", "!");
    await ann.waitForSelector('#typing:text("Bob is typing…")', WAIT);
    await bob.press("#text", "Enter");
    await line(ann, "Thanks!").waitFor(WAIT);
    await ann.waitForSelector("#typing:empty", WAIT);

    // Inline edit and delete of one's own message; the other side sees both.
    await line(ann, "Coffee is ready").hover();
    await line(ann, "Coffee is ready").locator(".edit").click();
    await ann.fill("#messages .edit-box", "Coffee and tea are ready");
    await ann.press("#messages .edit-box", "Enter");
    await line(bob, "Coffee and tea are ready").locator(".edited").waitFor(WAIT);
    expect(await line(bob, "Coffee and tea are ready").locator(".edit").count()).toBe(0); // not Bob's to edit
    await line(ann, "Morning all").hover();
    await line(ann, "Morning all").locator(".delete").click();
    await line(ann, "Morning all").locator(".delete", { hasText: "Confirm delete" }).click();
    await line(bob, "Morning all").waitFor({ state: "detached", ...WAIT });

    // A second room: messages in the room not shown raise its badge; opening it clears it.
    await ann.fill("#room", "random");
    await ann.click("#join");
    await ann.waitForSelector('#room-title:text("#random")', WAIT);
    await say(bob, "Anyone for lunch?");
    await roomButton(ann, "#lobby").locator(".badge", { hasText: "1" }).waitFor(WAIT);
    await roomButton(ann, "#lobby").click();
    await ann.waitForSelector('#room-title:text("#lobby")', WAIT);
    expect(await roomButton(ann, "#lobby").locator(".badge").count()).toBe(0);

    // A direct conversation started from the member list; Ann gets it with a badge.
    await roomButton(ann, "#random").click();
    await bob.locator("#members li", { hasText: "Ann" }).locator(".dm").click();
    await bob.waitForSelector('#room-title:text("@Ann")', WAIT);
    await say(bob, "psst, between us");
    await roomButton(ann, "@Bob").locator(".badge", { hasText: "1" }).waitFor(WAIT);
    await roomButton(ann, "@Bob").click();
    await line(ann, "psst, between us").waitFor(WAIT);
    await roomButton(ann, "#lobby").click();

    await ann.screenshot({ path: join(outputDir, "web-desktop.png") });
    await ann.emulateMedia({ colorScheme: "dark" });
    await ann.screenshot({ path: join(outputDir, "web-dark.png") });
  }, 120_000);

  it("scrolls back through older messages to the start of the room", async () => {
    const writer: Socket = await connectClient(pods[0]!.url, "Archivist");
    await writer.emitWithAck("join", { room: "archive" });
    for (let i = 0; i < 120; i++) {
      const ack: Ack = await writer.emitWithAck("message", { room: "archive", text: `old message ${i}` });
      expect(ack.ok).toBe(true);
    }
    const page = await browser.newPage();
    await joinAs(page, pods[1]!.url, "Reader", "archive");
    await line(page, "old message 119").waitFor(WAIT);
    expect(await line(page, "old message 0").count()).toBe(0);
    // Each scroll to the top pages in older messages, until the start of the room.
    for (let i = 0; i < 10 && (await line(page, "old message 0").count()) === 0; i++) {
      const before = await page.locator("#messages li.msg").count();
      await page.locator("#messages").evaluate((list) => {
        list.scrollTop = 0;
        list.dispatchEvent(new Event("scroll"));
      });
      // Polled on a timer: requestAnimationFrame (the default) may not run in a page in the background.
      await page.waitForFunction((n) => document.querySelectorAll("#messages li.msg").length > n, before, { polling: 100, ...WAIT });
    }
    await line(page, "old message 0").waitFor(WAIT);
    await page.waitForSelector('#messages li.notice:text("The start of this conversation.")', WAIT);
    expect(await page.locator("#messages li.msg").count()).toBe(120);
  }, 120_000);

  it("shows a banner while reconnecting, then how many messages it caught up, on another pod", async () => {
    const ann = await browser.newPage();
    const bob = await browser.newPage();
    await joinAs(ann, pods[0]!.url, "Ann", "standup");
    await joinAs(bob, balancer.url, "Bob", "standup");
    await say(ann, "Yesterday I fixed the build");
    await line(bob, "Yesterday I fixed the build").waitFor(WAIT);

    // Bob's connection is cut, and nothing takes him back until Ann has said more.
    balancer.setBackends([]);
    balancer.dropConnections();
    await bob.waitForSelector('#banner:text("Reconnecting")', WAIT);
    await say(ann, "Today I review the web page");
    await say(ann, "No blockers");
    await line(ann, "Yesterday I fixed the build").locator(".edit").click({ force: true });
    await ann.fill("#messages .edit-box", "Yesterday I fixed the build, again");
    await ann.press("#messages .edit-box", "Enter");
    await ann.locator("#messages .edited").first().waitFor(WAIT);

    balancer.setBackends([pods[0]!.port]); // he comes back on the other pod
    await bob.waitForSelector('#banner:text("Reconnected: caught up 2 messages.")', WAIT);
    await line(bob, "No blockers").waitFor(WAIT);
    await line(bob, "Yesterday I fixed the build, again").locator(".edited").waitFor(WAIT);
    expect(await bob.locator("#status").textContent()).toBe("online");
  }, 120_000);

  it("explains a refusal in a toast: a room that is not yours (forbidden) and a quota with its wait (rate_limited)", async () => {
    const page = await browser.newPage();
    await joinAs(page, pods[0]!.url, "Mallory", "lobby");
    await page.fill("#room", dmRoom("Ann", "Bob"));
    await page.click("#join");
    const forbidden = page.locator('.toast[data-kind="forbidden"]');
    await forbidden.waitFor(WAIT);
    expect(await forbidden.textContent()).toMatch(
      /^Could not join dm:[0-9a-f]{32}: not allowed\. dm:[0-9a-f]{32} is (a direct conversation between two other users|not a direct conversation yet)/,
    );

    const spender = await browser.newPage();
    await joinAs(spender, quotaPod.url, "Spender", "lobby");
    await say(spender, "x".repeat(400)); // stored, and now over the 300-byte quota
    await line(spender, "xxxx").locator(".edit").click({ force: true });
    await spender.fill("#messages .edit-box", "shorter");
    await spender.press("#messages .edit-box", "Enter");
    const limited = spender.locator('.toast[data-kind="rate_limited"]');
    await limited.waitFor(WAIT);
    expect(await limited.textContent()).toMatch(/^Not edited: .*stored the most allowed.*\. Try again in \d+ s\./);
  });

  it("works with the keyboard alone, announces messages, and keeps text contrast at WCAG AA in light and dark", async () => {
    const page = await browser.newPage();
    await page.goto(pods[1]!.url);
    await page.keyboard.press("Tab"); // the skip link
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("name");
    await page.keyboard.type("Kim");
    await page.keyboard.press("Enter"); // the room field is already "lobby"
    await page.waitForSelector("#send:enabled", WAIT);
    for (let i = 0; i < 15 && (await page.evaluate(() => document.activeElement?.id)) !== "text"; i++) await page.keyboard.press("Tab");
    await page.keyboard.type("typed without a mouse");
    await page.keyboard.press("Enter");
    await line(page, "typed without a mouse").waitFor(WAIT);
    // Arrow Up in the empty box edits one's last message; Enter saves.
    await page.keyboard.press("ArrowUp");
    await page.waitForSelector("#messages .edit-box:focus", WAIT);
    await page.keyboard.press("End");
    await page.keyboard.type(", then fixed");
    await page.keyboard.press("Enter");
    await line(page, "typed without a mouse, then fixed").locator(".edited").waitFor(WAIT);
    expect(await page.getAttribute("#messages", "aria-live")).toBe("polite");

    const texts = ["#messages .who", "#messages .text", "#messages .when", "#room-list .open", "#members li", "#room-title", ".hint", "#send", "#status"];
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const measured = await contrasts(page, texts);
      expect(measured.length).toBeGreaterThan(8);
      expect(
        measured.filter((m) => m.ratio < 4.5),
        scheme,
      ).toEqual([]);
    }
  }, 120_000);

  it("fits a phone: one column, the room list behind a button, nothing wider than the screen", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await joinAs(page, pods[0]!.url, "Pat", "lobby");
    await page.fill("#room", "random");
    await page.click("#join");
    await page.waitForSelector('#room-title:text("#random")', WAIT);
    expect(await page.isVisible("#sidebar")).toBe(false);
    await page.click("#menu");
    expect(await page.getAttribute("#menu", "aria-expanded")).toBe("true");
    await roomButton(page, "#lobby").click();
    await page.waitForSelector('#room-title:text("#lobby")', WAIT);
    expect(await page.isVisible("#sidebar")).toBe(false);
    await say(page, "Hello from my phone");
    expect(await page.evaluate(() => getComputedStyle(document.querySelector("main")!).gridTemplateColumns.split(" ").length)).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(outputDir, "web-mobile.png"), fullPage: true });
  });
});
