import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ROOM_NAME_PATTERN, roomName } from "@chat/shared";
import { mayJoin } from "../src/auth.js";
import { reservedRoom } from "../src/identity.js";

const room = fc.stringMatching(ROOM_NAME_PATTERN);
const user = { id: "u", name: "u" };

describe("room names and the token's rooms claim", () => {
  it("accepts exactly the names of 1-64 characters of A-Z a-z 0-9 _ . : -", () => {
    fc.assert(
      fc.property(room, (name) => {
        expect(roomName.safeParse(name).success).toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (name) => {
        expect(roomName.safeParse(name).success).toBe(/^[A-Za-z0-9_.:-]{1,64}$/.test(name));
      }),
    );
    expect(roomName.safeParse("a".repeat(65)).success).toBe(false);
  });

  it("lets a session without a rooms claim into any room, and one with an empty claim into none", () => {
    fc.assert(
      fc.property(room, (name) => {
        expect(mayJoin({ user }, name)).toBe(true);
        expect(mayJoin({ user, rooms: [] }, name)).toBe(false);
      }),
    );
  });

  it("matches a plain entry exactly and an entry ending in * as a prefix, nothing else", () => {
    fc.assert(
      fc.property(room, room, (allowed, name) => {
        expect(mayJoin({ user, rooms: [allowed] }, name)).toBe(name === allowed);
        expect(mayJoin({ user, rooms: [`${allowed}*`] }, name)).toBe(name.startsWith(allowed));
        expect(mayJoin({ user, rooms: [`${allowed}*`] }, `${allowed}${name}`)).toBe(true);
      }),
    );
    expect(mayJoin({ user, rooms: ["*"] }, "anything")).toBe(true);
    // The * is a wildcard only at the end: elsewhere it is a character no room name has.
    expect(mayJoin({ user, rooms: ["team-*-ops"] }, "team-a-ops")).toBe(false);
  });

  it("lets a session into a room when any one entry of its claim matches", () => {
    fc.assert(
      fc.property(fc.array(room, { maxLength: 5 }), room, (claim, name) => {
        expect(mayJoin({ user, rooms: [...claim, name] }, name)).toBe(true);
        expect(mayJoin({ user, rooms: claim }, name)).toBe(claim.includes(name));
      }),
    );
  });

  it("reserves a connection's own id room and every name of 16 lowercase hex digits (an adapter uid), and no other name", () => {
    const connections = new Set(["Xy3_connection-id"]);
    expect(reservedRoom("Xy3_connection-id", connections)).toMatch(/a connection's own room/);
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{16}$/), (uid) => {
        expect(reservedRoom(uid, connections)).toMatch(/reserved/);
      }),
    );
    fc.assert(
      fc.property(room, (name) => {
        fc.pre(!/^[0-9a-f]{16}$/.test(name) && !connections.has(name));
        expect(reservedRoom(name, connections)).toBeUndefined();
      }),
    );
    // Upper-case hex, or one digit more or less, is an ordinary room.
    expect(reservedRoom("0123456789ABCDEF", connections)).toBeUndefined();
    expect(reservedRoom("0123456789abcdef0", connections)).toBeUndefined();
  });
});
