import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Cluster, Redis } from "ioredis";
import {
  REDIS_ENGINES,
  closeAllClients,
  connectClient,
  record,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type RedisEngine,
  type ServiceProcess,
} from "@chat/testkit";
import { deadLetterStreamOf, type Notification } from "@chat/shared";
import { engineClient, joinRoom, pendingCount, startNotifier, waitForNoPending } from "./helpers.js";

const STREAM = "notifier:events";
const MAX_DATA = 1024;

/** Fields as pairs, in order, so a case can repeat one. */
const cases: [name: string, fields: [string, string][], reason: RegExp][] = [
  [
    "missing type",
    [
      ["room", "ok"],
      ["data", "{}"],
    ],
    /^type: is required/,
  ],
  [
    "a type with a space",
    [
      ["room", "ok"],
      ["type", "a b"],
      ["data", "{}"],
    ],
    /^type: must be 1-64/,
  ],
  [
    "missing data",
    [
      ["room", "ok"],
      ["type", "t"],
    ],
    /^data: is required/,
  ],
  [
    "data that is not JSON",
    [
      ["room", "ok"],
      ["type", "t"],
      ["data", "{oops"],
    ],
    /^data: is not valid JSON/,
  ],
  [
    "data as bare text",
    [
      ["room", "ok"],
      ["type", "t"],
      ["data", "hello"],
    ],
    /^data: is not valid JSON/,
  ],
  [
    "oversized data",
    [
      ["room", "ok"],
      ["type", "t"],
      ["data", JSON.stringify("x".repeat(MAX_DATA))],
    ],
    /^data: is \d+ bytes, more than the 1024/,
  ],
  [
    "no target",
    [
      ["type", "t"],
      ["data", "{}"],
    ],
    /^no target/,
  ],
  [
    "two targets",
    [
      ["room", "ok"],
      ["user", "ann"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^several targets \(room, user\)/,
  ],
  [
    "a room and a broadcast",
    [
      ["room", "ok"],
      ["broadcast", "1"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^several targets/,
  ],
  [
    "a bad room name",
    [
      ["room", "no spaces"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^room: must be 1-64/,
  ],
  [
    "a per-user room as a room",
    [
      ["room", "@user:ann"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^room: must be 1-64/,
  ],
  [
    "a user with a control character",
    [
      ["user", "a\u0007b"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^user: must be 1-128 printable/,
  ],
  [
    "an empty user",
    [
      ["user", ""],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^user: must be 1-128 printable/,
  ],
  [
    "broadcast set to no",
    [
      ["broadcast", "no"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^broadcast: must be 1 or true/,
  ],
  [
    "a bad id",
    [
      ["room", "ok"],
      ["type", "t"],
      ["data", "{}"],
      ["id", "has space"],
    ],
    /^id: must be 1-128/,
  ],
  [
    "an unknown field",
    [
      ["room", "ok"],
      ["type", "t"],
      ["data", "{}"],
      ["colour", "red"],
    ],
    /^unknown field\(s\): colour/,
  ],
  [
    "a field given twice",
    [
      ["room", "ok"],
      ["room", "other"],
      ["type", "t"],
      ["data", "{}"],
    ],
    /^field room is given twice/,
  ],
];

interface DeadLetter {
  entry: string;
  reason: string;
  fields: [string, string][];
}

describe.each(REDIS_ENGINES)("malformed stream entries, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let db: Redis | Cluster;
  let notifier: ServiceProcess;
  let inbox: Notification[];
  const entryIds = new Map<string, string>();
  let goodEntry: string;
  const dead = new Map<string, DeadLetter>();

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    db = engineClient(redis);
    const [chat, n] = await Promise.all([startService("chat", { env: redis.env }), startNotifier(redis.env, { NOTIFIER_MAX_DATA_BYTES: String(MAX_DATA) })]);
    notifier = n;
    const client = await connectClient(chat.url, "watcher");
    inbox = record<Notification>(client, "notification");
    await joinRoom(client, "ok");

    for (const [name, fields] of cases) entryIds.set(name, (await db.xadd(STREAM, "*", ...fields.flat()))!);
    goodEntry = (await db.xadd(STREAM, "*", "room", "ok", "type", "t", "data", '{"after":"the bad ones"}'))!;

    await waitFor(() => inbox.some((n) => n.eventId === `s-${goodEntry}`), { what: "the good entry after the bad ones" });
    await waitForNoPending(db, STREAM);
    // `notifier:events:dead`, or on a cluster `{notifier:events}:dead`, in the stream's slot.
    const entries = (await db.xrange(deadLetterStreamOf(STREAM, { cluster: engine === "cluster" }), "-", "+")) as [string, string[]][];
    for (const [, flat] of entries) {
      const fields = Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]!]]))) as Record<string, string>;
      dead.set(fields.entry!, { entry: fields.entry!, reason: fields.reason!, fields: JSON.parse(fields.fields!) });
    }
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    db?.disconnect();
    await redis?.dispose();
  });

  it.each(cases)("moves an entry with %s to the dead letters, with its reason and fields", (name, fields, reason) => {
    const letter = dead.get(entryIds.get(name)!);
    expect(letter, `no dead letter for ${name}`).toBeDefined();
    expect(letter!.reason).toMatch(reason);
    expect(letter!.fields).toEqual(fields);
  });

  it("acks them all, dead-letters nothing else, and still delivers the good entry after them", async () => {
    expect(await pendingCount(db, STREAM)).toBe(0);
    expect(dead.size).toBe(cases.length);
    expect(inbox.map((n) => n.eventId)).toEqual([`s-${goodEntry}`]);
    expect(inbox[0]).toMatchObject({ room: "ok", type: "t", data: { after: "the bad ones" } });
  });

  it("logs each one once, without crashing", () => {
    const warnings = notifier.logs.filter((l) => /malformed stream entry/.test(l.msg));
    expect(warnings.map((l) => l.entry).sort()).toEqual([...entryIds.values()].sort());
    expect(notifier.child.exitCode).toBeNull();
    expect(notifier.logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});
