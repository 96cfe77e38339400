import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "@chat/testkit";
import { createMemoryRoomLog, createRedisRoomLog, type RoomLog } from "../src/room-log.js";

// Edits, deletes and read markers of the room log (room-log-amend.ts), the same in Redis and in
// memory. The cross-pod behaviour is in services/chat/test/conversations.test.ts.

const ann = { id: "ann", name: "Ann" };
const bob = { id: "bob", name: "Bob" };

describe.each(["redis", "memory"] as const)("amending the %s room log", (kind) => {
  let server: RedisServer | undefined;
  let redis: Redis | undefined;
  let log: RoomLog;
  const delivered: { event: string; payload: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    if (kind === "redis") {
      server = await startRedis();
      redis = new Redis(server.url);
      log = createRedisRoomLog(redis);
    } else {
      log = createMemoryRoomLog((_room, event, payload) => delivered.push({ event, payload }));
    }
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.dispose();
  });

  const send = async (room: string, text: string, user = ann) => (await log.append(room, "message", { room, text, user })).id;

  it("refuses an edit by anyone but the author, and an id that is not a message of the log", async () => {
    const id = await send("r1", "hello");
    expect(await log.amend("r1", { kind: "edit", id, text: "hi", by: "bob" })).toEqual({ refused: "forbidden" });
    expect(await log.amend("r1", { kind: "delete", id, by: "bob" })).toEqual({ refused: "forbidden" });
    expect(await log.amend("r1", { kind: "edit", id: "1-0", text: "hi", by: "ann" })).toEqual({ refused: "not_found" });
    // A user whose id only appears in the text is not its author.
    const trick = await send("r1", ',"user":{"id":"bob",', ann);
    expect(await log.amend("r1", { kind: "delete", id: trick, by: "bob" })).toEqual({ refused: "forbidden" });
  });

  it("replays an edit as message_edited, with the message's id and its own log id", async () => {
    const id = await send("r2", "helo");
    const edit = await log.amend("r2", { kind: "edit", id, text: "hello", by: "ann" });
    expect(edit).toMatchObject({ duplicate: false });
    const page = await log.read("r2", { after: id, limit: 10 });
    expect(page.entries).toEqual([
      expect.objectContaining({ event: "message_edited", room: "r2", id, text: "hello", logId: "id" in edit ? edit.id : "", prev: id }),
    ]);
    if (kind === "memory") expect(delivered.at(-1)).toMatchObject({ event: "message_edited", payload: { id, text: "hello", prev: id } });
  });

  it("removes a deleted message and its edits from the log, and reads past the hole without a gap", async () => {
    const before = await send("r3", "before");
    const id = await send("r3", "secret", bob);
    await log.amend("r3", { kind: "edit", id, text: "still secret", by: "bob" });
    const after = await send("r3", "after");
    const removed = await log.amend("r3", { kind: "delete", id });
    expect(removed).toMatchObject({ duplicate: false });
    const page = await log.read("r3", { after: before, limit: 10 });
    expect(page.entries.map((e) => [e.event, e.text ?? e.id])).toEqual([
      ["message", "after"],
      ["message_deleted", id],
    ]);
    expect(page).toMatchObject({ gap: false, complete: true });
    // The deletion points back to the last entry before it was made, so a live client's chain holds.
    expect(page.entries[1]!.prev).toBe(after);
    expect(JSON.stringify((await log.read("r3", { limit: 100 })).entries)).not.toContain("secret");
    expect(await log.amend("r3", { kind: "delete", id })).toEqual({ refused: "not_found" });
  });

  it("moves a read marker only forward and counts the entries after it, up to the cap", async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await send("r4", `m${i}`));
    expect(await log.readState("r4", "ann", 100)).toMatchObject({ unread: 4, last: { id: ids[3], text: "m3" } });
    expect(await log.markRead("r4", "ann", ids[1]!)).toBe(ids[1]);
    expect(await log.markRead("r4", "ann", ids[0]!)).toBe(ids[1]);
    expect(await log.readState("r4", "ann", 100)).toMatchObject({ lastRead: ids[1], unread: 2 });
    expect(await log.readState("r4", "ann", 1)).toMatchObject({ unread: 1 });
    expect((await log.readState("r4", "bob", 100)).lastRead).toBeUndefined();
  });
});
