import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "@chat/testkit";
import { compareLogIds } from "../src/log-id.js";
import { createMemoryRoomLog, createRedisRoomLog, type RoomLog } from "../src/room-log.js";
import type { ReadOptions } from "../src/room-log-read.js";

/** What the test knows: every id ever appended, and the ids the log still holds. */
interface Truth {
  all: string[];
  kept: string[];
}

/** Reads forward from `since` until the log says there is no more; every page's answer. */
async function pageForward(log: RoomLog, room: string, since: string, options: Omit<ReadOptions, "after" | "before">) {
  const pages = [];
  let after = since;
  for (;;) {
    const page = await log.read(room, { ...options, after });
    pages.push(page);
    if (!page.more) return pages;
    after = page.cursor!;
  }
}

/** Reads back from the newest entry until the start of the log; pages newest first. */
async function pageBack(log: RoomLog, room: string, options: Omit<ReadOptions, "after" | "before">) {
  const pages = [];
  let before: string | undefined;
  for (;;) {
    const page = await log.read(room, { ...options, ...(before && { before }) });
    pages.push(page);
    if (!page.more) return pages;
    before = page.cursor!;
  }
}

/**
 * The properties, for one log and one `since`:
 * - a single read that is not capped says `complete` exactly when nothing after `since` is missing;
 * - `gap` is true exactly when entries after `since` were trimmed, and is never confused with `more`;
 * - paging forward with `after` returns exactly the entries the log holds after `since`;
 * - paging back with `before` returns exactly the log, `complete` only at its start.
 */
async function check(log: RoomLog, room: string, truth: Truth, since: string, limit: number, maxBytes: number) {
  const after = truth.kept.filter((id) => compareLogIds(id, since) > 0);
  const missing = truth.all.filter((id) => compareLogIds(id, since) > 0 && !truth.kept.includes(id));

  const whole = await log.read(room, { after: since, limit: 100_000 });
  expect(whole.entries.map((e) => e.id)).toEqual(after);
  expect(whole.complete).toBe(missing.length === 0);
  expect(whole.gap).toBe(missing.length > 0);
  expect(whole.more).toBe(false);

  const pages = await pageForward(log, room, since, { limit, maxBytes });
  expect(pages.flatMap((p) => p.entries.map((e) => e.id))).toEqual(after);
  expect(pages[0]!.gap).toBe(missing.length > 0);
  expect(pages.slice(1).some((p) => p.gap)).toBe(false);
  for (const page of pages) expect(page.complete).toBe(!page.gap && !page.more);
  // One page that holds everything after `since` and says so is complete; a capped one never is.
  expect(pages[0]!.complete).toBe(missing.length === 0 && pages.length === 1);

  const back = await pageBack(log, room, { limit, maxBytes });
  expect(back.reverse().flatMap((p) => p.entries.map((e) => e.id))).toEqual(truth.kept);
  expect(back.map((p) => p.complete)).toEqual(back.map((_p, i) => i === 0));
  expect(back[0]!.gap).toBe(truth.kept.length > 0 && truth.kept[0] !== truth.all[0]);
}

/** A `since` a client may hold: the start, any id it saw (trimmed since or not), or one past the newest. */
function sinceFrom(all: string[], pick: number): string {
  if (pick === 0) return "0-0";
  if (pick > all.length) return `${Number(all.at(-1)!.split("-")[0]) + 1}-0`;
  return all[pick - 1]!;
}

const text = fc.oneof(fc.constant("hi"), fc.string({ maxLength: 300 }));

describe("the room log's catch-up and paging on a real Redis", () => {
  let server: RedisServer;
  let redis: Redis;
  let n = 0;

  beforeAll(async () => {
    // Small stream nodes, so that MAXLEN ~ and MINID ~ trim at many points.
    server = await startRedis({ args: ["--stream-node-max-entries", "7"] });
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  it("says complete exactly when nothing after since is missing, and pages reconstruct the log, for random sizes, trims and since", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(text, { minLength: 1, maxLength: 300 }),
        fc.constantFrom(5, 20, 60, 1000),
        fc.oneof(
          fc.constant({ kind: "none" as const }),
          fc.record({ kind: fc.constant("age" as const), at: fc.nat() }),
          fc.record({ kind: fc.constant("len" as const), keep: fc.oneof(fc.constant(0), fc.nat({ max: 40 })), exact: fc.boolean() }),
        ),
        fc.nat(),
        fc.integer({ min: 1, max: 60 }),
        fc.constantFrom(Number.POSITIVE_INFINITY, 200, 2000),
        async (texts, maxEntries, trim, pick, limit, maxBytes) => {
          const room = `prop-${n++}`;
          const log = createRedisRoomLog(redis, { maxEntries, maxAgeSeconds: 0 });
          const appended = await Promise.all(texts.map((t) => log.append(room, "message", { room, text: t })));
          const all = appended.map((a) => a.id);
          const key = `chat:log:{${room}}`;
          // Max age trims as the append script does (MINID ~), at a random entry; or a length trim.
          if (trim.kind === "age") await redis.xtrim(key, "MINID", "~", all[trim.at % all.length]!);
          if (trim.kind === "len") await (trim.exact ? redis.xtrim(key, "MAXLEN", trim.keep) : redis.xtrim(key, "MAXLEN", "~", trim.keep));
          const kept = (await redis.xrange(key, "-", "+")).map(([id]) => id);
          await check(log, room, { all, kept }, sinceFrom(all, pick % (all.length + 2)), limit, maxBytes);
        },
      ),
      { numRuns: 80 },
    );
  });

  it("answers a catch-up on a log that no longer exists with a gap, unless since is 0-0", async () => {
    const log = createRedisRoomLog(redis);
    expect(await log.read("never-written", { after: "0-0", limit: 10 })).toMatchObject({ entries: [], complete: true, gap: false });
    expect(await log.read("never-written", { after: "1700000000000-0", limit: 10 })).toMatchObject({ entries: [], complete: false, gap: true });
  });
});

describe("the in-memory room log's catch-up and paging", () => {
  it("keeps the same rules as Redis for random sizes, caps and since", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(text, { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 80 }),
        fc.nat(),
        fc.integer({ min: 1, max: 60 }),
        fc.constantFrom(Number.POSITIVE_INFINITY, 200, 2000),
        async (texts, maxEntries, pick, limit, maxBytes) => {
          const room = `mem-${n++}`;
          const log = createMemoryRoomLog(() => undefined, { maxEntries, maxAgeSeconds: 0 });
          const all = [];
          for (const t of texts) all.push((await log.append(room, "message", { room, text: t })).id);
          await check(log, room, { all, kept: all.slice(-maxEntries) }, sinceFrom(all, pick % (all.length + 2)), limit, maxBytes);
        },
      ),
      { numRuns: 150 },
    );
  });
});
