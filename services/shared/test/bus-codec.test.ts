import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startRedis, waitFor, type RedisServer } from "@chat/testkit";
import { BUS_MODES, createBusEmitter, type BusBroadcast } from "../src/bus.js";
import { busPublishCommand, encodeBroadcast, encodeDisconnect, type EncodedBroadcast } from "../src/bus-codec.js";

// The codec captures what the bus emitter would publish, so that the room log, the notifier and a
// revocation can send it in a script or a MULTI. It must be byte for byte what the emitter itself
// sends to a real Redis, on the same channel, or the chat pods' adapter would not decode it.
describe.each(BUS_MODES)("the bus codec in %s mode", (mode) => {
  let server: RedisServer;
  let pub: Redis;
  let sub: Redis;
  const received: [channel: string, bytes: Buffer][] = [];

  beforeAll(async () => {
    server = await startRedis();
    pub = new Redis(server.url);
    sub = new Redis(server.url);
    sub.on("pmessageBuffer", (_pattern: Buffer, channel: Buffer, bytes: Buffer) => received.push([channel.toString(), bytes]));
    sub.on("smessageBuffer", (channel: Buffer, bytes: Buffer) => received.push([channel.toString(), bytes]));
  });

  afterAll(async () => {
    pub?.disconnect();
    sub?.disconnect();
    await server?.dispose();
  });

  it("encodes a room's event, an event for everyone and a disconnect exactly as the emitter publishes them", async () => {
    const payload = { text: "héllo", n: 1, nested: { list: [1, "two", null] } };
    const cases: [EncodedBroadcast, (emitter: BusBroadcast) => void][] = [
      [encodeBroadcast(mode, "room-1", "message", payload), (e) => e.to("room-1").emit("message", payload)],
      [encodeBroadcast(mode, undefined, "notification", payload), (e) => e.emit("notification", payload)],
      [encodeDisconnect(mode, "@jti:abc"), (e) => e.in("@jti:abc").disconnectSockets()],
    ];
    if (mode === "classic") await sub.psubscribe("*");
    else await sub.ssubscribe(...new Set(cases.map(([encoded]) => encoded.channel)));
    const emitter = createBusEmitter(pub, mode);
    for (const [, send] of cases) send(emitter);
    await waitFor(() => received.length === cases.length, { what: () => `${cases.length} messages, got ${received.length}` });
    expect(received).toEqual(cases.map(([encoded]) => [encoded.channel, encoded.bytes]));
  });

  it("names the command the mode publishes with", () => {
    expect(busPublishCommand(mode)).toBe(mode === "sharded" ? "SPUBLISH" : "PUBLISH");
  });
});
