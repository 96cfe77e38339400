import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { takeToken, type EventBucket } from "../src/events.js";

describe("the per-connection event bucket (RATE_LIMIT_EVENTS_PER_SECOND / _BURST)", () => {
  it("lets a new connection send a full burst at once, then refuses the next with the wait until one token is back", () => {
    const bucket: EventBucket = {};
    for (let i = 0; i < 10; i++) expect(takeToken(bucket, 1000, 5, 10)).toBe(0);
    // 5 per second: a token every 200 ms.
    expect(takeToken(bucket, 1000, 5, 10)).toBe(200);
    expect(takeToken(bucket, 1100, 5, 10)).toBe(100);
    expect(takeToken(bucket, 1200, 5, 10)).toBe(0);
  });

  it("never lets more than burst + perSecond × elapsed events through, whatever the timing", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 200 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 300 }),
        (perSecond, burst, gaps) => {
          const bucket: EventBucket = {};
          let now = 1_000_000;
          let passed = 0;
          for (const gap of gaps) {
            now += gap;
            if (takeToken(bucket, now, perSecond, burst) === 0) passed++;
          }
          const elapsed = now - 1_000_000 - gaps[0]!;
          expect(passed).toBeLessThanOrEqual(burst + Math.floor((elapsed * perSecond) / 1000) + 1);
        },
      ),
    );
  });

  it("names a wait after which the refused event passes, and never a wait of 0 for a refusal", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 60 }), (perSecond, burst, extra) => {
        const bucket: EventBucket = {};
        for (let i = 0; i < burst; i++) expect(takeToken(bucket, 0, perSecond, burst)).toBe(0);
        let now = 0;
        for (let i = 0; i < extra; i++) {
          const wait = takeToken(bucket, now, perSecond, burst);
          if (wait === 0) continue;
          expect(wait).toBeGreaterThanOrEqual(1);
          // Waiting exactly as long as it said lets the next event through.
          now += wait;
          expect(takeToken({ ...bucket }, now, perSecond, burst)).toBe(0);
        }
      }),
    );
  });

  it("refills to the burst and no further after a long silence", () => {
    const bucket: EventBucket = {};
    for (let i = 0; i < 3; i++) takeToken(bucket, 0, 1, 3);
    let passed = 0;
    for (let i = 0; i < 10; i++) if (takeToken(bucket, 3_600_000, 1, 3) === 0) passed++;
    expect(passed).toBe(3);
  });
});
