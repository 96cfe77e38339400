import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fieldOf, pairsOf } from "../src/flat-reply.js";

describe("Redis's flat [name, value, …] replies", () => {
  it("read as pairs, in order, a dangling last name ignored", () => {
    expect(pairsOf(["a", "1", "b", "2"])).toEqual([
      ["a", "1"],
      ["b", "2"],
    ]);
    expect(pairsOf(["a", "1", "b"])).toEqual([["a", "1"]]);
    expect(pairsOf([])).toEqual([]);
  });

  it("give back exactly the reply's even-length prefix, for any reply", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), fc.integer())), (flat) => {
        expect(pairsOf(flat).flat()).toEqual(flat.slice(0, flat.length - (flat.length % 2)));
      }),
    );
  });

  it("find the first value of a name, never a value that looks like a name", () => {
    expect(fieldOf(["e", "p", "p", "0-0"], "p")).toBe("0-0");
    expect(fieldOf(["e", "x", "e", "y"], "e")).toBe("x");
    expect(fieldOf(["e", "x", "p"], "p")).toBeUndefined();
  });
});
