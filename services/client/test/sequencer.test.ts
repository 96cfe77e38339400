import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { LOG_START } from "@chat/shared/log-id";
import { RoomSequencer, type SequencedEntry } from "../src/sequencer.js";

/** A room log of `n` entries chained by `prev`, with ids that sort numerically, not as strings (9-0 < 10-0, 10-2 < 10-10). */
function roomLog(n: number): SequencedEntry[] {
  const entries: SequencedEntry[] = [];
  let prev = LOG_START;
  for (let i = 0; i < n; i++) {
    const id = `${1000 + Math.floor(i / 12)}-${i % 12}`;
    entries.push({ id, prev });
    prev = id;
  }
  return entries;
}

/** Runs a sequencer over live entries, then one catch-up that reads everything after `since` in pages, with live entries arriving between the pages. */
function run(log: SequencedEntry[], live: number[], pageSize: number, during: number[], shuffle: (entries: SequencedEntry[]) => SequencedEntry[]) {
  const seq = new RoomSequencer();
  seq.startAt(LOG_START);
  const delivered: SequencedEntry[] = [];
  let gaps = 0;
  for (const i of live) {
    const verdict = seq.accept(log[i]!);
    if (verdict === "deliver") delivered.push(log[i]!);
    if (verdict === "gap") gaps++;
  }
  const since = seq.beginCatchUp();
  const after = log.slice(log.findIndex((e) => e.id === since) + 1);
  for (let page = 0; page * pageSize < after.length || page === 0; page++) {
    delivered.push(...seq.replay(shuffle(after.slice(page * pageSize, (page + 1) * pageSize))));
    const arriving = during[page];
    if (arriving !== undefined) expect(seq.accept(log[arriving]!)).toBe("held");
  }
  delivered.push(...seq.finishCatchUp());
  return { seq, delivered, gaps };
}

const scenario = fc.integer({ min: 0, max: 40 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    live: fc.array(fc.nat({ max: Math.max(0, n - 1) }), { maxLength: n === 0 ? 0 : 60 }),
    pageSize: fc.integer({ min: 1, max: 10 }),
    during: fc.array(fc.nat({ max: Math.max(0, n - 1) }), { maxLength: n === 0 ? 0 : 10 }),
    seed: fc.integer(),
  }),
);

/** A deterministic shuffle: a catch-up's page may come in any order. */
function shuffler(seed: number) {
  let state = seed >>> 0 || 1;
  return (entries: SequencedEntry[]) => {
    const out = [...entries];
    for (let i = out.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) >>> 0;
      const j = state % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
}

describe("RoomSequencer", () => {
  it("delivers a lossless live stream with repeats exactly once each, in log order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.array(fc.nat(), { maxLength: 50 }), (n, repeats) => {
        const log = roomLog(n);
        const seq = new RoomSequencer();
        seq.startAt(LOG_START);
        const delivered: string[] = [];
        for (const [i, entry] of log.entries()) {
          expect(seq.accept(entry)).toBe("deliver");
          delivered.push(entry.id);
          // Any entry already delivered, sent again (a catch-up overlapping the live stream, say), is a duplicate.
          for (const r of repeats.filter((_, k) => k % n === i)) expect(seq.accept(log[r % (i + 1)]!)).toBe("duplicate");
        }
        expect(delivered).toEqual(log.map((e) => e.id));
        expect(seq.lastId).toBe(log.at(-1)!.id);
      }),
    );
  });

  it("ends with the whole log delivered once, in order, whatever live entries were lost, repeated or reordered before a catch-up", () => {
    fc.assert(
      fc.property(scenario, ({ n, live, pageSize, during, seed }) => {
        const log = roomLog(n);
        const { seq, delivered } = run(log, live, pageSize, during, shuffler(seed));
        expect(delivered.map((e) => e.id)).toEqual(log.map((e) => e.id));
        expect(seq.catchingUp).toBe(false);
        expect(seq.lastId).toBe(n === 0 ? LOG_START : log.at(-1)!.id);
      }),
    );
  });

  it("never delivers a live entry out of the prev chain: what it lets through is always a prefix of the log", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.nat({ max: 39 }), { maxLength: 80 }), (n, picks) => {
        const log = roomLog(n);
        const seq = new RoomSequencer();
        seq.startAt(LOG_START);
        const delivered: string[] = [];
        for (const pick of picks) if (seq.accept(log[pick % n]!) === "deliver") delivered.push(log[pick % n]!.id);
        expect(delivered).toEqual(log.slice(0, delivered.length).map((e) => e.id));
      }),
    );
  });

  it("reports a gap once for a broken chain, then holds every live entry until the catch-up ends", () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 40 }), fc.array(fc.nat({ max: 39 }), { maxLength: 20 }), (n, later) => {
        const log = roomLog(n);
        const seq = new RoomSequencer();
        seq.startAt(LOG_START);
        expect(seq.accept(log[0]!)).toBe("deliver");
        expect(seq.accept(log[2]!)).toBe("gap");
        expect(seq.catchingUp).toBe(true);
        for (const i of later) expect(seq.accept(log[i % n]!)).toBe("held");
        // The catch-up joins with the last id delivered, and fills in what was missed.
        expect(seq.beginCatchUp()).toBe(log[0]!.id);
        const filled = seq.replay(log.slice(1, 2));
        expect(filled.map((e) => e.id)).toEqual([log[1]!.id]);
        const released = seq.finishCatchUp().map((e) => e.id);
        // What was held comes out sorted, without what is already delivered, each once.
        const expected = [...new Set([2, ...later.map((i) => i % n)])].filter((i) => i > 1).sort((a, b) => a - b);
        expect(released).toEqual(expected.map((i) => log[i]!.id));
      }),
    );
  });

  it("drops what it held when a catch-up is abandoned, and a later catch-up still delivers the whole log once", () => {
    fc.assert(
      fc.property(scenario, ({ n, live, pageSize, during, seed }) => {
        const log = roomLog(n);
        const seq = new RoomSequencer();
        seq.startAt(LOG_START);
        const delivered: SequencedEntry[] = [];
        for (const i of live) if (seq.accept(log[i]!) === "deliver") delivered.push(log[i]!);
        seq.beginCatchUp();
        for (const i of during) seq.accept(log[i]!);
        seq.abandonCatchUp();
        expect(seq.catchingUp).toBe(false);
        const since = seq.beginCatchUp();
        const after = log.slice(log.findIndex((e) => e.id === since) + 1);
        const shuffle = shuffler(seed);
        for (let i = 0; i < after.length; i += pageSize) delivered.push(...seq.replay(shuffle(after.slice(i, i + pageSize))));
        delivered.push(...seq.finishCatchUp());
        expect(delivered.map((e) => e.id)).toEqual(log.map((e) => e.id));
      }),
    );
  });

  it("compares ids as two numbers, so 9-0 comes before 10-0 and 10-2 before 10-10", () => {
    const seq = new RoomSequencer();
    const out = seq.replay([
      { id: "10-10", prev: "10-2" },
      { id: "9-0", prev: "0-0" },
      { id: "10-2", prev: "10-0" },
      { id: "10-0", prev: "9-0" },
    ]);
    expect(out.map((e) => e.id)).toEqual(["9-0", "10-0", "10-2", "10-10"]);
  });

  it("joins without since until something was delivered, and startAt never moves it back", () => {
    const seq = new RoomSequencer();
    expect(seq.beginCatchUp()).toBeUndefined();
    seq.finishCatchUp();
    seq.startAt(LOG_START);
    expect(seq.accept({ id: "5-0", prev: LOG_START })).toBe("deliver");
    seq.startAt(LOG_START);
    expect(seq.lastId).toBe("5-0");
  });

  it("uses the deprecated logId when an entry has one, and takes an entry without prev (an old server) as the next", () => {
    const seq = new RoomSequencer();
    seq.startAt("1-0");
    expect(seq.accept({ id: "n-1", logId: "2-0", prev: "1-0" })).toBe("deliver");
    expect(seq.lastId).toBe("2-0");
    expect(seq.accept({ id: "3-0" })).toBe("deliver");
    expect(seq.accept({ id: "3-0" })).toBe("duplicate");
  });
});
