import { describe, expect, it } from "vitest";
import { displayName, historyRequest, joinRequest, leaveRequest, messageRequest, openAuth, roomName, validate } from "../src/protocol.js";

describe("room names", () => {
  it.each([["a"], ["lobby"], ["team.dev:backend_2-x"], ["x".repeat(64)]])("accepts %j", (room) => {
    expect(roomName.safeParse(room).success).toBe(true);
  });

  it.each([
    ["", "empty"],
    ["x".repeat(65), "65 characters"],
    ["has space", "a space"],
    ["slash/room", "a slash"],
    ["@user:bob", "the per-user prefix"],
    ["café", "non-ASCII"],
    ["room\n", "a newline"],
    [42, "a number"],
    [null, "null"],
    [["lobby"], "an array"],
  ] as [unknown, string][])("refuses %j (%s)", (room) => {
    expect(roomName.safeParse(room).success).toBe(false);
  });
});

describe("display names", () => {
  it.each([["al"], ["Zoë"], ["李小龍"], ["Ann Lee"], ["🙂".repeat(32)], ["x".repeat(32)], ["e\u0301"], ["한글"], ["⠁b"]])("accepts %j", (name) => {
    expect(displayName.safeParse(name).success).toBe(true);
  });

  it.each([
    ["", "empty"],
    ["x".repeat(33), "33 characters"],
    ["🙂".repeat(33), "33 emoji"],
    ["   ", "blanks only"],
    ["bad\u0000name", "a NUL"],
    ["tab\tname", "a tab"],
    ["line\u2028sep", "a line separator"],
    ["rtl\u202eoverride", "a bidi override (format character)"],
    ["\u2067isolate", "a bidi isolate"],
    ["\u3164", "a Hangul filler only"],
    ["\u2800\u2800", "blank Braille patterns only"],
    ["\u0301\u0308", "combining marks only"],
    ["\u115F\u1160 \uFFA0", "Hangul fillers and a space"],
    [7, "a number"],
  ] as [unknown, string][])("refuses %j (%s)", (name) => {
    expect(displayName.safeParse(name).success).toBe(false);
  });

  it("reads the name from the handshake auth and ignores other keys", () => {
    expect(openAuth.parse({ name: "ann", extra: 1 })).toEqual({ name: "ann" });
    expect(openAuth.safeParse(undefined).success).toBe(false);
  });
});

describe("message text", () => {
  const message = messageRequest(10);

  it("removes NUL and bidi embedding, override and isolate controls, keeps the implicit marks", () => {
    expect(message.parse({ room: "r", text: "a\u0000b\u202Ec\u2066d" }).text).toBe("abcd");
    expect(message.parse({ room: "r", text: "\u200Fשלום" }).text).toBe("\u200Fשלום");
    expect(message.safeParse({ room: "r", text: "\u0000\u202A" }).success).toBe(false);
  });

  it("accepts 1 to max characters, counting code points", () => {
    expect(message.safeParse({ room: "r", text: "a" }).success).toBe(true);
    expect(message.safeParse({ room: "r", text: "x".repeat(10) }).success).toBe(true);
    expect(message.safeParse({ room: "r", text: "🙂".repeat(10) }).success).toBe(true);
  });

  it("refuses empty, too long, or non-string text", () => {
    expect(message.safeParse({ room: "r", text: "" }).success).toBe(false);
    expect(message.safeParse({ room: "r", text: "x".repeat(11) }).success).toBe(false);
    expect(message.safeParse({ room: "r", text: "🙂".repeat(11) }).success).toBe(false);
    expect(message.safeParse({ room: "r", text: 5 }).success).toBe(false);
    expect(message.safeParse({ room: "r", text: { toString: "x" } }).success).toBe(false);
  });

  it("refuses unknown fields, including prototype keys", () => {
    expect(message.safeParse({ room: "r", text: "t", extra: 1 }).success).toBe(false);
    expect(message.safeParse(JSON.parse('{"room":"r","text":"t","__proto__":{"x":1}}')).success).toBe(false);
    expect(message.safeParse({ room: "r", text: "t", constructor: "x" }).success).toBe(false);
  });
});

describe("payload shapes", () => {
  it.each([[undefined], [null], ["lobby"], [42], [["lobby"]], [{}]])("join refuses %j", (payload) => {
    expect(joinRequest.safeParse(payload).success).toBe(false);
    expect(leaveRequest.safeParse(payload).success).toBe(false);
  });

  it("turns a failure into a bad_request ack with one line per problem", () => {
    const result = validate(messageRequest(5), { room: "bad room", text: "", x: 1 });
    expect(result).toEqual({
      ok: false,
      error: {
        code: "bad_request",
        message: "room: must be 1-64 characters of A-Z a-z 0-9 _ . : -; text: must not be empty; unknown field(s): x",
      },
    });
  });

  it("explains a payload that is not an object", () => {
    expect(validate(joinRequest, "lobby")).toEqual({
      ok: false,
      error: { code: "bad_request", message: "payload must be an object" },
    });
  });
});

describe("history requests", () => {
  it("accepts a room with at most one of before and after, and a limit of 1 to 100", () => {
    for (const payload of [
      { room: "lobby" },
      { room: "lobby", before: "1700000000000-0" },
      { room: "lobby", after: "0-0", limit: 100 },
      { room: "lobby", limit: 1 },
    ]) {
      expect(validate(historyRequest, payload)).toEqual({ ok: true, data: payload });
    }
  });

  it.each([
    [{ room: "lobby", before: "1-0", after: "1-0" }, "give before or after, not both"],
    [{ room: "lobby", limit: 0 }, "limit: must be at least 1"],
    [{ room: "lobby", limit: 101 }, "limit: must be at most 100"],
    [{ room: "lobby", limit: 2.5 }, "limit: must be a whole number"],
    [{ room: "lobby", limit: "10" }, "limit: must be a number"],
    [{ room: "lobby", before: "yesterday" }, "before: must be a message id like 1700000000000-0"],
    [{ room: "lobby", page: 2 }, "unknown field(s): page"],
  ])("refuses %j: %s", (payload, message) => {
    expect(validate(historyRequest, payload)).toEqual({ ok: false, error: { code: "bad_request", message } });
  });
});
