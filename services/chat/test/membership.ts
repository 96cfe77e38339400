import type { Socket } from "socket.io-client";
import { compareLogIds, type Ack, type ChatMessage } from "@chat/shared";

interface Entry {
  id: string;
  prev: string;
}

/** One stay of a client in a room: from the join it sent to the ack of its leave. */
interface Stay {
  room: string;
  state: "joining" | "joined" | "leaving" | "left";
  /** What the join ack returned, then every live message; by id. */
  entries: Map<string, Entry>;
  /** Live message ids in arrival order (to spot a message delivered twice). */
  live: string[];
}

/**
 * A socket.io client whose every room stay is recorded, so that a test can prove delivery exact:
 * no message outside a stay, none twice, and within a stay an unbroken chain of `prev` links
 * from the first entry the join returned to the last message received.
 */
export class Member {
  private readonly stays = new Map<string, Stay>();
  private readonly done: Stay[] = [];
  readonly problems: string[] = [];

  constructor(
    readonly socket: Socket,
    readonly user: string,
    readonly pod: number,
  ) {
    socket.on("message", (message: ChatMessage) => {
      const stay = this.stays.get(message.room);
      if (!stay) return void this.problems.push(`${message.id} in ${message.room} arrived outside any stay`);
      if (stay.live.includes(message.id)) this.problems.push(`${message.id} in ${message.room} arrived twice`);
      stay.live.push(message.id);
      stay.entries.set(message.id, { id: message.id, prev: message.prev });
    });
  }

  /** Rooms joined and not being left: where this member may send. */
  joined(): string[] {
    return [...this.stays.values()].filter((stay) => stay.state === "joined").map((stay) => stay.room);
  }

  /** Rooms this member is in as far as the server is concerned (joining, joined or leaving). */
  rooms(): string[] {
    return [...this.stays.keys()];
  }

  isIn(room: string): boolean {
    return this.stays.get(room)?.state === "joined";
  }

  received(room: string, id: string): boolean {
    return this.stays.get(room)?.entries.has(id) ?? false;
  }

  async join(room: string): Promise<void> {
    const stay: Stay = { room, state: "joining", entries: new Map(), live: [] };
    this.stays.set(room, stay);
    const ack = (await this.socket.emitWithAck("join", { room })) as Ack<{ messages: Entry[] }>;
    if (!ack.ok) throw new Error(`join ${room}: ${ack.error.message}`);
    for (const { id, prev } of ack.messages) stay.entries.set(id, { id, prev });
    stay.state = "joined";
  }

  async leave(room: string): Promise<void> {
    const stay = this.stays.get(room);
    if (!stay) return;
    stay.state = "leaving";
    const ack = (await this.socket.emitWithAck("leave", { room })) as Ack;
    if (!ack.ok) throw new Error(`leave ${room}: ${ack.error.message}`);
    stay.state = "left";
    this.stays.delete(room);
    this.done.push(stay);
  }

  /** Every problem found: messages outside a stay or twice, and gaps in any stay's chain. */
  check(): string[] {
    const problems = [...this.problems];
    for (const stay of [...this.done, ...this.stays.values()]) {
      const entries = [...stay.entries.values()].sort((a, b) => compareLogIds(a.id, b.id));
      for (let i = 1; i < entries.length; i++) {
        if (entries[i]!.prev !== entries[i - 1]!.id) {
          problems.push(`gap in ${stay.room}: ${entries[i]!.id} follows ${entries[i]!.prev}, but the last one held is ${entries[i - 1]!.id}`);
        }
      }
    }
    return problems;
  }
}

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
