import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  record,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, ChatMessage } from "@chat/shared";

/** Fixed, so a failure reproduces; change it to explore further. */
const SEED = 20261123;

/** Strings that have broken parsers and validators before. */
const nasty = fc.constantFrom(
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "",
  " ",
  "\u0000",
  "\u202e",
  "\ud800",
  "\udfff",
  "\ufeff",
  "💬".repeat(33),
  "a\u0301".repeat(40),
  "\r\n",
  "%00",
  "../../etc/passwd",
  "<script>alert(1)</script>",
  "${7*7}",
  "{{7*7}}",
  "' OR 1=1 --",
  "lobby\u0000admin",
  "x".repeat(65),
  "x".repeat(4001),
);
const hugeString = fc.integer({ min: 10_000, max: 60_000 }).map((n) => "y".repeat(n));
// A frame over maxHttpBufferSize closes its connection (and the acks in flight on it): rare here.
const leaf = fc.oneof(
  { arbitrary: fc.string({ unit: "binary", maxLength: 80 }), weight: 10 },
  { arbitrary: nasty, weight: 10 },
  { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null)), weight: 10 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 3 },
  { arbitrary: hugeString, weight: 1 },
);
/** Objects with the protocol's own keys (so validation gets past "not an object"), and poisoned ones. */
const objects = fc.oneof(
  fc.record({ room: leaf, text: leaf, since: leaf, clientMsgId: leaf }, { requiredKeys: [] }),
  fc.dictionary(fc.oneof(nasty, fc.string({ maxLength: 12 })), leaf, { maxKeys: 6 }),
  fc.anything({ withBigInt: false, withTypedArray: true, withObjectString: true, withNullPrototype: true, maxDepth: 4 }),
  fc.constantFrom(JSON.parse('{"__proto__":{"ok":true},"room":"safe"}'), JSON.parse('{"constructor":{"prototype":{"admin":true}},"room":"safe","text":"hi"}')),
);
const events = fc.oneof(fc.constantFrom("join", "leave", "message", "message", "join"), nasty, fc.string({ maxLength: 20 }));
/** An event and its arguments (zero to three of them), sent with an ack callback. */
const emission = fc.tuple(events, fc.array(fc.oneof(objects, leaf), { maxLength: 3 }));

/** Raw Socket.IO frames: broken packets, reserved names, acks the server never asked for. */
const rawFrames = fc.oneof(
  fc.constantFrom(
    "4",
    "42",
    "42[",
    "42{}",
    '42["join"',
    "42[1,2]",
    '42["connect",{}]',
    '42["disconnect"]',
    '42["disconnecting"]',
    '42["newListener","x"]',
    "43",
    "431[]",
    "4999",
    "45-[]",
    '451-["message",{"_placeholder":true,"num":9}]',
    "40",
    "41",
    "44",
    "4/admin,",
    "6",
    "2probe",
  ),
  fc.string({ unit: "binary", maxLength: 200 }).map((s) => "42" + s),
  fc.json().map((json) => "42" + json),
);

const isWellFormedAck = (ack: unknown): boolean => {
  if (typeof ack !== "object" || ack === null) return false;
  const a = ack as Ack;
  if (a.ok === true) return true;
  return (
    a.ok === false && typeof a.error?.code === "string" && typeof a.error.message === "string" && a.error.message.length > 0 && a.error.message.length < 500
  );
};

describe("a live pod under at least 1000 hostile payloads", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;
  let other: ServiceProcess;
  let alice: Socket;
  let bob: Socket;
  let bobInbox: ChatMessage[];
  let checks = 0;

  /** Alice, on the attacked pod, still reaches Bob on the other pod. */
  async function deliveryStillWorks(): Promise<void> {
    const text = `check ${checks++}`;
    const ack = (await alice.timeout(5000).emitWithAck("message", { room: "safe", text })) as Ack<{ id: string }>;
    expect(ack.ok).toBe(true);
    await waitFor(() => bobInbox.some((m) => m.text === text), { what: `bob to receive "${text}"` });
  }

  beforeAll(async () => {
    redis = await startRedis();
    // The events-per-connection limit would answer most of the flood before it reached validation.
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MESSAGES_PER_SECOND: "1000", RATE_LIMIT_EVENTS_PER_SECOND: "0" };
    [pod, other] = await Promise.all([startService("chat", { env, pod: "attacked" }), startService("chat", { env, pod: "other" })]);
    alice = await connectClient(pod.url, "alice");
    bob = await connectClient(other.url, "bob");
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "safe" })) as Ack).ok).toBe(true);
    bobInbox = record<ChatMessage>(bob, "message");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("answers 1200 generated emissions with well-formed acks, and keeps delivering", async () => {
    const samples = fc.sample(emission, { numRuns: 1500, seed: SEED });
    let attacker = await connectClient(pod.url, "mallory");
    const answers: unknown[] = [];
    let reconnects = 0;
    for (let start = 0; start < samples.length && answers.length < 1200; start += 25) {
      const batch = samples.slice(start, start + 25);
      const acks = await Promise.all(
        batch.map(([event, args]) =>
          attacker
            .timeout(10_000)
            .emitWithAck(event, ...args)
            // A frame over maxHttpBufferSize closes that connection (only it): no ack then.
            .catch((err: Error) => (attacker.connected ? err : "closed")),
        ),
      );
      answers.push(...acks.filter((ack) => ack !== "closed"));
      if (!attacker.connected) {
        reconnects++;
        attacker = await connectClient(pod.url, "mallory");
      }
      if (start % 200 === 0) await deliveryStillWorks();
    }
    await deliveryStillWorks();
    const bad = answers.filter((ack) => !isWellFormedAck(ack));
    expect(bad.slice(0, 3)).toEqual([]);
    expect(answers.length).toBeGreaterThanOrEqual(1200);
    expect(answers.filter((ack) => (ack as Ack).ok === false).length).toBeGreaterThan(1000);
    expect(reconnects).toBeLessThan(samples.length / 10);
  });

  it("survives 300 generated raw frames, broken packets and reserved event names", async () => {
    const frames = fc.sample(rawFrames, { numRuns: 300, seed: SEED });
    let attacker = await connectClient(pod.url, "mallory");
    for (const [i, frame] of frames.entries()) {
      if (!attacker.connected) attacker = await connectClient(pod.url, "mallory");
      attacker.io.engine.send(frame);
      if (i % 50 === 49) await deliveryStillWorks();
    }
    await deliveryStillWorks();
  });

  it("answers events sent without an ack callback with a protocol_error notice", async () => {
    const attacker = await connectClient(pod.url, "mallory");
    const notices = record<{ event: string }>(attacker, "protocol_error");
    for (const [event, args] of fc.sample(emission, { numRuns: 50, seed: SEED + 1 })) attacker.emit(event, ...args);
    await waitFor(() => notices.length > 0, { what: "a protocol_error notice" });
    await deliveryStillWorks();
  });

  it("stays up, with nothing crashing in its output", async () => {
    expect(pod.child.exitCode).toBeNull();
    expect((await fetch(`${pod.probeUrl}/livez`)).status).toBe(200);
    expect(pod.rawOutput()).not.toMatch(/TypeError|RangeError|uncaught|unhandled/i);
    expect(pod.logs.filter((line) => line.level >= 50)).toEqual([]);
  });
});
