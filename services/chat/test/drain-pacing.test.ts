import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MIN_TICK_MS, dueBy, waitForTurn } from "../src/drain.js";

const setting = fc.record({ total: fc.integer({ min: 1, max: 20_000 }), windowMs: fc.integer({ min: 1, max: 600_000 }) });

describe("drain pacing (DRAIN_SECONDS)", () => {
  it("disconnects the first client at once and every client by (total - 1) / total of the window", () => {
    fc.assert(
      fc.property(setting, ({ total, windowMs }) => {
        expect(dueBy(0, total, windowMs)).toBe(1);
        expect(dueBy(((total - 1) * windowMs) / total, total, windowMs)).toBe(total);
        expect(dueBy(windowMs * 10, total, windowMs)).toBe(total);
      }),
    );
  });

  it("spreads the disconnects evenly: at any moment, within one client of elapsed / window × total", () => {
    fc.assert(
      fc.property(setting, fc.double({ min: 0, max: 1, noNaN: true }), ({ total, windowMs }, fraction) => {
        const elapsed = fraction * windowMs;
        const due = dueBy(elapsed, total, windowMs);
        const even = (elapsed * total) / windowMs;
        expect(due).toBeGreaterThanOrEqual(Math.min(total, Math.floor(even)));
        expect(due).toBeLessThanOrEqual(Math.min(total, even + 1 + 1e-6));
      }),
    );
  });

  it("never lets the count go down as time goes on", () => {
    fc.assert(
      fc.property(setting, fc.array(fc.nat(), { minLength: 2, maxLength: 50 }), ({ total, windowMs }, times) => {
        const counts = [...times].sort((a, b) => a - b).map((t) => dueBy(t, total, windowMs));
        for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1]!);
      }),
    );
  });

  it("waits until the next client's turn, and at least MIN_TICK_MS, so a turn is never missed nor busy-waited", () => {
    fc.assert(
      fc.property(setting, fc.double({ min: 0, max: 1, noNaN: true }), ({ total, windowMs }, fraction) => {
        const elapsed = fraction * windowMs;
        const next = dueBy(elapsed, total, windowMs);
        fc.pre(next < total);
        const wait = waitForTurn(next, total, windowMs, elapsed);
        expect(wait).toBeGreaterThanOrEqual(MIN_TICK_MS);
        // After that wait the next client is due: the loop never wakes up to find nobody to disconnect.
        expect(dueBy(elapsed + wait, total, windowMs)).toBeGreaterThan(next);
        // And it does not oversleep: it wakes at the turn, or one tick from now if the turn is sooner.
        expect(elapsed + wait).toBeLessThanOrEqual(Math.max((next * windowMs) / total, elapsed + MIN_TICK_MS) + 1e-6);
      }),
    );
  });
});
