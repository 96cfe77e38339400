import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeStoredBody, encodeStoredBody, storedBodyBytes } from "../src/entry-encoding.js";

// Strings full of what JSON escapes: control characters, quotes, backslashes, escape look-alikes.
// eslint-disable-next-line no-control-regex -- the control characters are the point
const tricky = fc.stringMatching(/^(?:[\u0000-\u001f"\\/u0-9a-f]|\\u00[01][0-9a-f]|\p{L}|\u2028|\u{1F600})*$/u);
const bodies = fc.dictionary(fc.string(), fc.oneof(tricky, fc.jsonValue()));

describe("the room log's body encoding", () => {
  // The oracle is JSON's own round trip (which turns -0 into 0, for one).
  const viaJson = (body: unknown) => JSON.parse(JSON.stringify(body)) as unknown;

  it("gives back every body it stores as JSON would, for generated bodies full of characters JSON escapes", () => {
    fc.assert(
      fc.property(bodies, (body) => {
        expect(decodeStoredBody(encodeStoredBody(body))).toEqual(viaJson(body));
      }),
      { numRuns: 1000 },
    );
  });

  it("reads bodies stored as plain JSON before it, unchanged", () => {
    fc.assert(
      fc.property(bodies, (body) => {
        expect(decodeStoredBody(JSON.stringify(body))).toEqual(viaJson(body));
      }),
      { numRuns: 1000 },
    );
  });

  it("stores a control character in one byte, and never more than JSON would", () => {
    expect(storedBodyBytes({ text: "\u0001".repeat(4000) })).toBe(4000 + '{"text":""}'.length);
    fc.assert(fc.property(bodies, (body) => storedBodyBytes(body) <= Buffer.byteLength(JSON.stringify(body))));
  });
});
