import { describe, expect, it } from "vitest";
import fc from "fast-check";
import calculateSlot from "cluster-key-slot";
import { sameSlotTag } from "../src/slot-tag.js";

describe("a hash tag for keys that must share a slot with a name", () => {
  it("puts a prefixed key in the name's slot, for any name, braces included", () => {
    const braces = fc.string({ unit: fc.constantFrom("{", "}", "a", "b", ":", "é", "#") });
    fc.assert(
      fc.property(fc.oneof(fc.string(), braces), (name) => {
        expect(calculateSlot(`notifier:seen:{${sameSlotTag(name)}}:an-id`)).toBe(calculateSlot(name));
      }),
      { numRuns: 2000 },
    );
  });

  it("is the name's own tag, or the whole name, when it can be written between braces", () => {
    expect(sameSlotTag("socket.io#/#@user:Zoë X#")).toBe("socket.io#/#@user:Zoë X#");
    expect(sameSlotTag("chat:log:{room-a}")).toBe("room-a");
    expect(sameSlotTag("a}b")).toMatch(/^\d+$/);
  });
});
