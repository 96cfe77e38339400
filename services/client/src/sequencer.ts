import { compareLogIds, logIdOf } from "@chat/shared/log-id";

/** What a sequencer needs of a room entry: its log id (`id`, or the deprecated `logId`) and its predecessor's. */
export interface SequencedEntry {
  id: string;
  logId?: string;
  /** The id of the room's entry before this one; absent on servers that predate it. */
  prev?: string;
}

/**
 * What to do with a live entry:
 * - `deliver`: it is the next one; the sequencer has moved past it.
 * - `duplicate`: it is at or before the last one delivered: drop it.
 * - `held`: a catch-up is under way; it is kept and comes out of `finishCatchUp`.
 * - `gap`: its `prev` is not the last one delivered, so something before it never arrived. It is
 *   held, a catch-up has begun, and the caller must re-join with `since` (the last id) to fill it.
 */
export type Verdict = "deliver" | "duplicate" | "held" | "gap";

/**
 * The ordering logic of one room, with no I/O: it tracks the last id delivered, drops duplicates
 * by id, notices a broken `prev` chain, and holds live entries while a catch-up (a join with
 * `since`, then its pages) is in flight, so that the catch-up's older entries are not taken for
 * duplicates. `@chat/client` and the bench's load generator both run it, so the bench's
 * reliability figures measure the client's own logic.
 */
export class RoomSequencer<E extends SequencedEntry = SequencedEntry> {
  private last?: string;
  /** Entries that arrived during a catch-up; undefined when none is under way. */
  private held?: E[];

  /** The id of the last entry delivered, or undefined before the first. */
  get lastId(): string | undefined {
    return this.last;
  }

  /** True while a catch-up is under way (live entries are held). */
  get catchingUp(): boolean {
    return this.held !== undefined;
  }

  /**
   * Marks the room as read up to `id` when nothing was delivered yet: after a join that found the
   * log empty (`LOG_START`), so that the first live entry's `prev` can be checked.
   */
  startAt(id: string): void {
    this.last ??= id;
  }

  /** Sorts out a live entry (see `Verdict`). */
  accept(entry: E): Verdict {
    if (this.held) {
      this.held.push(entry);
      return "held";
    }
    if (this.last !== undefined && compareLogIds(logIdOf(entry), this.last) <= 0) return "duplicate";
    if (this.last !== undefined && entry.prev !== undefined && entry.prev !== this.last) {
      this.held = [entry];
      return "gap";
    }
    this.last = logIdOf(entry);
    return "deliver";
  }

  /** Starts a catch-up (a no-op when one is under way); returns the `since` to join with. */
  beginCatchUp(): string | undefined {
    this.held ??= [];
    return this.last;
  }

  /**
   * Entries a catch-up read (a join's or a page's), in any order: returns those to deliver, in log
   * order, without the ones already delivered, and moves past them.
   */
  replay(entries: readonly E[]): E[] {
    const delivered: E[] = [];
    for (const entry of [...entries].sort((a, b) => compareLogIds(logIdOf(a), logIdOf(b)))) {
      if (this.last !== undefined && compareLogIds(logIdOf(entry), this.last) <= 0) continue;
      this.last = logIdOf(entry);
      delivered.push(entry);
    }
    return delivered;
  }

  /** Ends the catch-up: returns the held entries to deliver (as `replay`), and takes live ones again. */
  finishCatchUp(): E[] {
    const held = this.held ?? [];
    this.held = undefined;
    return this.replay(held);
  }

  /** Gives up a catch-up that failed: the held entries are dropped (the next catch-up reads them again). */
  abandonCatchUp(): void {
    this.held = undefined;
  }
}
