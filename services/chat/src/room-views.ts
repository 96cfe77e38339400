import type { User } from "@chat/shared";

export interface RosterEntry {
  user: User;
  /** How many pod instances the user is connected to the room from. */
  instances: number;
}

/** A room as a join, a leave or the reaper sees it. */
export interface RoomView {
  /** Every user in the room on any live pod: exact in a small room, as of a snapshot in a big one. */
  roster: Map<string, RosterEntry>;
  /**
   * Whether joins and leaves are announced to the room's members (`presence` events): only while
   * it has at most `announceMaxMembers` members. Above, each announcement would go to every member
   * and a storm of N joins would cost N² deliveries.
   */
  announce: boolean;
  /** The members a join ack lists, sorted by name: all of them in a small room, the first `announceMaxMembers` in a big one. */
  listed(): User[];
}

export interface RoomViewsOptions {
  /**
   * A room with more members than this is "big": its joins and leaves are not announced, its join
   * acks list this many members, and its roster is read from Redis at most once per `maxAgeMs` per
   * pod, shared by every join and leave meanwhile. 0: no room is big.
   * @default 200
   */
  announceMaxMembers?: number;
  /**
   * How old a big room's roster may be.
   * @default 1000
   */
  maxAgeMs?: number;
}

interface Snapshot {
  at: number;
  view: RoomView;
  /** The read under way that will replace this snapshot, shared by every caller meanwhile. */
  pending?: Promise<RoomView>;
}

/** Big rooms' snapshots unused for this long are dropped (a room that emptied, or moved to other pods). */
const FORGET_AFTER_MS = 60_000;

/**
 * The rosters of joins and leaves. A small room is read exactly each time, as it always was. A big
 * one would cost each join a read of every member (HGETALL, parse, sort: O(N) each, O(N²) for a
 * storm of joins), so it is read once per `maxAgeMs` and the snapshot shared.
 */
export class RoomViews {
  private readonly big = new Map<string, Snapshot>();
  private readonly announceMax: number;
  private readonly maxAgeMs: number;
  private lastSweep = Date.now();

  constructor(
    private readonly read: (room: string) => Promise<Map<string, RosterEntry>>,
    { announceMaxMembers = 200, maxAgeMs = 1000 }: RoomViewsOptions = {},
  ) {
    this.announceMax = announceMaxMembers;
    this.maxAgeMs = maxAgeMs;
  }

  async view(room: string): Promise<RoomView> {
    const cached = this.big.get(room);
    if (!cached) return this.store(room, await this.read(room));
    if (Date.now() - cached.at < this.maxAgeMs) return cached.view;
    cached.pending ??= this.read(room).then(
      (roster) => this.store(room, roster),
      (err: unknown) => {
        cached.pending = undefined;
        throw err;
      },
    );
    return cached.pending;
  }

  /** Whether a room of `size` members has its joins and leaves announced. */
  announces(size: number): boolean {
    return this.announceMax === 0 || size <= this.announceMax;
  }

  private store(room: string, roster: Map<string, RosterEntry>): RoomView {
    const announce = this.announces(roster.size);
    let listed: User[] | undefined;
    const limit = announce ? Infinity : this.announceMax;
    const view: RoomView = { roster, announce, listed: () => (listed ??= usersOf(roster).slice(0, limit)) };
    const now = Date.now();
    if (announce) this.big.delete(room);
    else this.big.set(room, { at: now, view });
    if (now - this.lastSweep > FORGET_AFTER_MS / 6) {
      this.lastSweep = now;
      for (const [name, snapshot] of this.big) if (now - snapshot.at > FORGET_AFTER_MS) this.big.delete(name);
    }
    return view;
  }
}

/** The users of a roster, sorted by name. */
export function usersOf(roster: Map<string, RosterEntry>): User[] {
  return [...roster.values()].map((entry) => entry.user).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
