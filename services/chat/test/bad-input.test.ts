import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

const MAX_FRAME = 16 * 1024;

describe("malformed input at a live pod", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;
  let attacker: Socket;
  let alice: Socket;
  let bob: Socket;

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", { env: { REDIS_URL: redis.url, MAX_HTTP_BUFFER_SIZE: String(MAX_FRAME) } });
    [attacker, alice, bob] = await Promise.all([connectClient(pod.url, "mallory"), connectClient(pod.url, "alice"), connectClient(pod.url, "bob")]);
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "safe" })) as Ack).ok).toBe(true);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  const cases: [string, string, unknown[]][] = [
    ["join without a payload", "join", []],
    ["join with a string", "join", ["lobby"]],
    ["join with a number", "join", [42]],
    ["join with null", "join", [null]],
    ["join with an array", "join", [["lobby"]]],
    ["join with a bad room", "join", [{ room: "no spaces allowed" }]],
    ["join with a huge room", "join", [{ room: "x".repeat(10_000) }]],
    ["join with two payloads", "join", [{ room: "a" }, { room: "b" }]],
    ["join with __proto__", "join", [JSON.parse('{"room":"a","__proto__":{"admin":true}}')]],
    ["leave with nothing", "leave", [undefined]],
    ["message with text as an object", "message", [{ room: "safe", text: { length: 1 } }]],
    ["message with binary text", "message", [{ room: "safe", text: new Uint8Array([1, 2, 3]) }]],
    ["message with empty text", "message", [{ room: "safe", text: "" }]],
    ["message with too much text", "message", [{ room: "safe", text: "x".repeat(4001) }]],
    ["message with a constructor key", "message", [{ room: "safe", text: "hi", constructor: { name: "x" } }]],
    ["message to a room not joined", "message", [{ room: "safe", text: "hi" }]],
    ["an event that does not exist", "nope", [{}]],
    ["an event named error", "error", [{}]],
    ["an event named __proto__", "__proto__", [{}]],
    ["an event named hasOwnProperty", "hasOwnProperty", [{}]],
  ];

  it.each(cases)("acks %s with a well-formed error", async (_name, event, args) => {
    const ack = (await attacker.timeout(5000).emitWithAck(event, ...args)) as Ack;
    expect(ack.ok).toBe(false);
    if (!ack.ok) {
      expect(typeof ack.error.code).toBe("string");
      expect(ack.error.message.length).toBeGreaterThan(0);
      expect(ack.error.message.length).toBeLessThan(500);
    }
  });

  it("tells a client that sent events without an ack callback, and stays up", async () => {
    const notices = record<{ event: string }>(attacker, "protocol_error");
    attacker.emit("join", { room: "safe" });
    attacker.emit("message", "garbage");
    attacker.emit("error", new Error("x"));
    await waitFor(() => notices.length === 3, { what: "3 protocol_error notices" });
    expect(notices.map((n) => n.event).sort()).toEqual(["error", "join", "message"]);
  });

  it("refuses a text of only whitespace with bad_request naming the field, and stores nothing", async () => {
    const inbox = record<ChatMessage>(bob, "message");
    for (const text of [" ", "\n\t  ", "\u00a0\u3000"]) {
      const ack: Ack = await alice.emitWithAck("message", { room: "safe", text });
      expect(ack).toEqual({ ok: false, error: { code: "bad_request", message: "text: must not be blank (only whitespace)" } });
    }
    const marker: Ack<{ id: string }> = await alice.emitWithAck("message", { room: "safe", text: "after the blanks" });
    await waitFor(() => inbox.some((m) => marker.ok && m.id === marker.id), { what: "bob to get the marker" });
    expect(inbox.map((m) => m.text)).toEqual(["after the blanks"]);
  });

  it("closes only the connection that sends a frame over maxHttpBufferSize", async () => {
    const big = await connectClient(pod.url, "big");
    const closed = new Promise<string>((resolve) => big.once("disconnect", (reason) => resolve(reason)));
    big.emit("message", { room: "safe", text: "x".repeat(MAX_FRAME * 2) }, () => undefined);
    expect(await closed).toMatch(/transport (close|error)/);
  });

  it("keeps serving the other clients", async () => {
    const inbox = record<ChatMessage>(bob, "message");
    const ack: Ack<{ id: string }> = await alice.emitWithAck("message", { room: "safe", text: "still here" });
    expect(ack.ok).toBe(true);
    await waitFor(() => inbox.some((m) => ack.ok && m.id === ack.id), { what: "bob to get alice's message" });
    expect(pod.child.exitCode).toBeNull();
    expect(pod.rawOutput()).not.toMatch(/Error|uncaught/i);
  });
});

describe("the handshake", () => {
  let pod: ServiceProcess;

  beforeAll(async () => {
    pod = await startService("chat");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
  });

  it.each([
    ["no auth at all", undefined],
    ["an empty auth", {}],
    ["a blank name", { name: "   " }],
    ["a name too long", { name: "x".repeat(33) }],
    ["a name with a control character", { name: "a\u0007b" }],
    ["a name that is not a string", { name: ["x"] }],
  ])("refuses %s with a clear connect_error", async (_name, auth) => {
    const error = await connectClient(pod.url, "unused", { auth: auth as Record<string, unknown> }).then(
      () => undefined,
      (err: Error & { data?: { code: string } }) => err,
    );
    expect(error?.message).toMatch(/auth\.name/);
    expect(error?.data?.code).toBe("unauthorized");
  });
});
