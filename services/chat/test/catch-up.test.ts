import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import { closeAllClients, connectClient, startRedis, startService, stopAllServices, type RedisServer, type ServiceProcess } from "@chat/testkit";
import type { Ack, HistoryAck, JoinAck, ReplayedEntry } from "@chat/shared";

type Join = Ack<JoinAck>;
type History = Ack<HistoryAck>;

/** Sends `count` messages of `text`, 50 at a time (in parallel, so ids are in ack order only per batch). */
async function fill(socket: Socket, room: string, count: number, text = "x"): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 50); j++) batch.push(socket.emitWithAck("message", { room, text: `${text} ${j}` }));
    const acks = (await Promise.all(batch)) as Ack[];
    if (!acks.every((ack) => ack.ok)) throw new Error(`a send failed: ${JSON.stringify(acks.find((ack) => !ack.ok))}`);
  }
}

/** Every entry the room's log holds now, oldest first, read back with `history {before}`. */
async function wholeLog(socket: Socket, room: string): Promise<ReplayedEntry[]> {
  const pages: ReplayedEntry[][] = [];
  let before: string | undefined;
  for (;;) {
    const page: History = await socket.emitWithAck("history", before ? { room, before, limit: 100 } : { room, limit: 100 });
    if (!page.ok) throw new Error(page.error.message);
    pages.unshift(page.messages);
    if (!page.more) return pages.flat();
    before = page.cursor;
  }
}

/** Pages forward from a catch-up's cursor until the log says there is no more. */
async function pageOn(socket: Socket, room: string, first: Extract<Join, { ok: true }>): Promise<{ entries: ReplayedEntry[]; pages: number; last: History }> {
  const entries = [...first.messages];
  let cursor = first.more ? first.cursor : undefined;
  let pages = 0;
  let last: History = { ok: true, room, messages: [], complete: first.complete, gap: first.gap, more: first.more };
  while (cursor) {
    last = await socket.emitWithAck("history", { room, after: cursor, limit: 100 });
    if (!last.ok) throw new Error(last.error.message);
    pages++;
    entries.push(...last.messages);
    cursor = last.more ? last.cursor : undefined;
  }
  return { entries, pages, last };
}

const ids = (entries: ReplayedEntry[]) => entries.map((e) => e.id);

// The same rules with Redis (trimmed with MAXLEN ~, which keeps more than HISTORY_MAX_ENTRIES) and
// on a single node (trimmed exactly).
describe.each([
  ["with Redis", true],
  ["on a single node without Redis", false],
])("catch-up and paging %s", (_mode, withRedis) => {
  let redis: RedisServer | undefined;
  let pod: ServiceProcess;
  let small: ServiceProcess;
  let ann: Socket;
  let bob: Socket;
  let cat: Socket;

  beforeAll(async () => {
    redis = withRedis ? await startRedis() : undefined;
    const env = { REDIS_URL: redis?.url, RATE_LIMIT_MESSAGES_PER_SECOND: "0", RATE_LIMIT_JOINS_PER_USER_PER_MINUTE: "0" };
    [pod, small] = await Promise.all([
      startService("chat", { env, pod: "chat-a" }),
      // Keeps 10 entries per room; with Redis it shares the server, so its rooms are named apart.
      startService("chat", { env: { ...env, HISTORY_MAX_ENTRIES: "10" }, pod: "chat-small" }),
    ]);
    ann = await connectClient(pod.url, "ann");
    bob = await connectClient(pod.url, "bob");
    cat = await connectClient(small.url, "cat");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("never says complete after 1400 messages while entries after since are missing, and pages to every one", async () => {
    await ann.emitWithAck("join", { room: "big" });
    await fill(ann, "big", 1400);
    const log = await wholeLog(ann, "big");
    expect(log.length).toBeGreaterThanOrEqual(1000);
    const since = log[0]!.id;
    const ack: Join = await bob.emitWithAck("join", { room: "big", since });
    if (!ack.ok) throw new Error(ack.error.message);
    // Capped at 200 entries: more to page, and nothing trimmed. Never `complete: true`.
    expect(ack).toMatchObject({ complete: false, gap: false, more: true });
    expect(ack.messages).toHaveLength(200);
    expect(ack.cursor).toBe(ack.messages.at(-1)!.id);
    const { entries, last } = await pageOn(bob, "big", ack);
    expect(ids(entries)).toEqual(ids(log.slice(1)));
    expect(last).toMatchObject({ ok: true, complete: true, gap: false, more: false });
    expect(entries.every((e, i) => e.prev === (i === 0 ? since : entries[i - 1]!.id))).toBe(true);
  });

  it("with HISTORY_MAX_ENTRIES=10, returns every entry the log still holds after since before saying complete", async () => {
    await cat.emitWithAck("join", { room: "tiny" });
    await fill(cat, "tiny", 60);
    const log = await wholeLog(cat, "tiny");
    expect(log.length).toBeGreaterThanOrEqual(10);
    const ack: Join = await cat.emitWithAck("join", { room: "tiny", since: log[0]!.id });
    expect(ack.ok && ids(ack.messages)).toEqual(ids(log.slice(1)));
    expect(ack).toMatchObject({ ok: true, complete: true, gap: false, more: false });
  });

  it("tells a gap (trimmed, gone for good) from more to page", async () => {
    const log = await wholeLog(cat, "tiny");
    const trimmed = log[0]!.prev; // still a real id, no longer in the log
    const ack: Join = await cat.emitWithAck("join", { room: "tiny", since: "1-0" });
    expect(ack).toMatchObject({ ok: true, complete: false, gap: true, more: false });
    expect(ack.ok && ids(ack.messages)).toEqual(ids(log));
    expect(ack.ok && ack.cursor).toBeUndefined();
    const fromTrimmed: Join = await cat.emitWithAck("join", { room: "tiny", since: trimmed });
    expect(fromTrimmed).toMatchObject({ ok: true, complete: true, gap: false });
  });

  it("caps a catch-up by bytes: a room of large messages answers about 256 KiB and a cursor", async () => {
    await ann.emitWithAck("join", { room: "large" });
    await fill(ann, "large", 150, "y".repeat(3990));
    const ack: Join = await bob.emitWithAck("join", { room: "large", since: "0-0" });
    if (!ack.ok) throw new Error(ack.error.message);
    expect(ack).toMatchObject({ complete: false, gap: false, more: true });
    const bytes = Buffer.byteLength(JSON.stringify(ack.messages));
    expect(bytes).toBeLessThanOrEqual(256 * 1024 + ack.messages.length * 200);
    expect(ack.messages.length).toBeLessThan(150);
    const { entries, pages } = await pageOn(bob, "large", ack);
    expect(entries).toHaveLength(150);
    expect(pages).toBeGreaterThan(1);
  });

  it("pages back with history {before}, oldest first, complete at the start of the log", async () => {
    await ann.emitWithAck("join", { room: "back" });
    await fill(ann, "back", 120);
    const newest: History = await ann.emitWithAck("history", { room: "back" });
    expect(newest.ok && newest.messages).toHaveLength(50);
    expect(newest).toMatchObject({ ok: true, complete: false, more: true });
    const older: History = await ann.emitWithAck("history", { room: "back", before: newest.ok ? newest.cursor : "", limit: 100 });
    expect(older).toMatchObject({ ok: true, complete: true, gap: false, more: false });
    expect(older.ok && older.messages).toHaveLength(70);
    expect(older.ok && older.messages.at(-1)!.id).toBe(newest.ok && newest.messages[0]!.prev);
  });

  it("refuses a history request that breaks a rule, naming the field", async () => {
    const bad = async (payload: unknown) => {
      const ack: History = await ann.emitWithAck("history", payload);
      return ack.ok ? "ok" : `${ack.error.code}: ${ack.error.message}`;
    };
    expect(await bad({ room: "back", limit: 0 })).toMatch(/^bad_request: limit: must be at least 1/);
    expect(await bad({ room: "back", limit: 101 })).toMatch(/^bad_request: limit: must be at most 100/);
    expect(await bad({ room: "back", before: "1-0", after: "1-0" })).toMatch(/^bad_request: give before or after, not both/);
    expect(await bad({ room: "back", after: "soon" })).toMatch(/^bad_request: after: must be a message id/);
    expect(await bad({ room: "elsewhere" })).toMatch(/^not_in_room: join elsewhere before reading its history/);
  });
});
