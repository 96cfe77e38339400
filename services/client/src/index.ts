import { io, type Socket } from "socket.io-client";
import { Emitter } from "@socket.io/component-emitter";
import { LOG_START } from "@chat/shared/log-id";
import { SLOW_CONSUMER_CLOSE } from "@chat/shared/close-codes";
import type { Ack, ChatMessage, DmEvent, HistoryAck, JoinAck, PresenceEvent, ReadEvent, RoomSummary, SessionEnded, TypingEvent, User } from "@chat/shared";
import { AMEND_EVENTS, type MessageDeletedEvent, type MessageEditedEvent } from "./conversations.js";
import { retryDelay } from "./backoff.js";
import { RoomSequencer } from "./sequencer.js";
import { ChatError, type ChatClientOptions, type ClientEvents, type HistoryEntry, type HistoryPage, type JoinResult, type Notification } from "./types.js";

export type { ChatMessage, PresenceEvent, SessionEnded, User };
export type { DmEvent, ReadEvent, RoomSummary, TypingEvent } from "@chat/shared";
export type { MessageDeletedEvent, MessageEditedEvent } from "./conversations.js";
export { RoomSequencer, type SequencedEntry, type Verdict } from "./sequencer.js";
export { retryDelay, type RetryBackoff } from "./backoff.js";
export { ChatError, type ChatClientOptions, type ClientEvents, type HistoryEntry, type HistoryPage, type JoinResult, type Notification } from "./types.js";

/** Entries per `history` page while catching up: the protocol's maximum. */
const PAGE = 100;

/** A room event as the client delivers it: a chat message or a room notification. */
type RoomEntry = { id: string; logId?: string; prev: string; room: string; event?: string } & Record<string, unknown>;

interface RoomState {
  /** The last id, duplicates, gaps, and the live entries held while a join is in flight. */
  seq: RoomSequencer<RoomEntry>;
  /** The join (with its paging) under way, if any: one at a time per room, shared by all callers. */
  joining?: Promise<JoinResult>;
  /** The retrying re-sync under way, if any. */
  syncing?: Promise<void>;
}

/** The close code of the WebSocket behind a "transport close", when there was one. */
function closedBy(details: unknown): number | undefined {
  const code = (details as { context?: { code?: unknown } } | undefined)?.context?.code;
  return typeof code === "number" ? code : undefined;
}

/** Answers worth another try: the server (or its Redis) will come back. */
const RETRYABLE = new Set(["unavailable", "timeout", "rate_limited"]);

/**
 * A chat connection that loses nothing it was told about: it remembers the last id of every
 * room, re-joins with `since` after every reconnect (to any pod) and when the server asks it to
 * re-sync, drops duplicates by id, and notices a broken chain (`prev`) and fills it in.
 */
export class ChatClient extends Emitter<Record<string, never>, Record<string, never>, ClientEvents> {
  readonly socket: Socket;
  private readonly rooms = new Map<string, RoomState>();
  private readonly attempts: number;
  private readonly timeoutMs: number;
  private draining = false;
  private ended?: SessionEnded;
  private retry?: ReturnType<typeof setTimeout>;

  constructor(url: string, options: ChatClientOptions) {
    super();
    this.attempts = options.sendAttempts ?? 5;
    this.timeoutMs = options.ackTimeoutMs ?? 5000;
    const auth = options.auth;
    this.socket = io(url, {
      transports: ["websocket", "polling"],
      ...options.socket,
      auth: typeof auth === "function" ? (cb) => void Promise.resolve(auth()).then(cb, () => cb({})) : auth,
    });
    const socket = this.socket;
    socket.on("connect", () => {
      this.draining = false;
      this.ended = undefined;
      void this.resyncAll();
    });
    socket.on("disconnect", (reason, details) => {
      this.emitReserved("status", false);
      if (closedBy(details) === SLOW_CONSUMER_CLOSE.code) this.emitReserved("slow_consumer");
      if (reason !== "io server disconnect") return;
      // An expired session reconnects at once when `auth` can hand out a fresh token. A revoked
      // one stays down. (A draining pod closes the transport: socket.io-client reconnects itself.)
      if (this.draining || (this.ended?.reconnect && typeof auth === "function")) socket.connect();
    });
    socket.on("shutdown", () => (this.draining = true));
    // A refusal by the server stops socket.io-client's own reconnecting; the ones that waiting
    // cures (a draining pod, Redis briefly unreachable) are tried again after `retryAfterMs`.
    // Jittered (backoff.ts): the clients a storm refused together must not all come back together.
    let refusals = 0;
    socket.on("connect", () => (refusals = 0));
    socket.on("connect_error", (err: Error & { data?: { code?: string; retryAfterMs?: number } }) => {
      if (err.data?.code !== "unavailable" && err.data?.code !== "rate_limited") return;
      const wait = retryDelay(refusals++, err.data.retryAfterMs, options.retryBackoff);
      this.emitReserved("retrying", { code: err.data.code, delayMs: wait });
      this.retry = setTimeout(() => socket.connect(), wait);
    });
    socket.on("session_ended", (ended: SessionEnded) => {
      this.ended = ended;
      this.emitReserved("session_ended", ended);
    });
    socket.on("resync", () => void this.resyncAll());
    socket.on("message", (message: ChatMessage) => this.accept({ ...message, event: "message" }));
    socket.on("notification", (n: Notification) => {
      if (n.room !== undefined && n.prev !== undefined) this.accept({ ...n, room: n.room, prev: n.prev, event: "notification" });
      else this.emitReserved("notification", n);
    });
    socket.on("presence", (event: PresenceEvent) => this.emitReserved("presence", event));
    // Edits and deletes are room entries (kept as the last id, checked against `prev`); typing,
    // dm and read are not stored and pass straight on.
    for (const event of AMEND_EVENTS) socket.on(event, (e: RoomEntry) => this.accept({ ...e, event }));
    socket.on("typing", (e: TypingEvent) => this.emitReserved("typing", e));
    socket.on("dm", (e: DmEvent) => this.emitReserved("dm", e));
    socket.on("read", (e: ReadEvent) => this.emitReserved("read", e));
  }

  /** Tells the room this user is typing (the server passes on one every 2 s per room). */
  async typing(room: string): Promise<void> {
    await this.ask("typing", { room });
  }

  /** Opens the direct conversation with user `user` (a user id), joins it, and returns its room. */
  async dm(user: string): Promise<string> {
    const { room } = await this.ask<{ room: string }>("dm", { user });
    await this.join(room);
    return room;
  }

  /** Replaces the text of your message `id`; `message_edited` follows, like any room entry. */
  async edit(room: string, id: string, text: string): Promise<void> {
    await this.ask("edit", { room, id, text });
  }

  /** Deletes your message `id` (anyone's, with a moderator token); `message_deleted` follows. */
  async delete(room: string, id: string): Promise<void> {
    await this.ask("delete", { room, id });
  }

  /** Marks `room` read up to entry `id`; resolves to the stored marker (never moves back). */
  async markRead(room: string, id: string): Promise<string> {
    return (await this.ask<{ id: string }>("read", { room, id })).id;
  }

  /** The rooms this connection is in, with unread counts and last messages. */
  async roomList(): Promise<RoomSummary[]> {
    return (await this.ask<{ rooms: RoomSummary[] }>("rooms", {})).rooms;
  }

  private async ask<T extends object = object>(event: string, payload: unknown): Promise<T> {
    const ack = await this.request<Ack<T>>(event, payload);
    if (!ack.ok) throw new ChatError(ack.error.code, ack.error.message, ack.error.retryAfterMs);
    return ack;
  }

  /** Connects again after the session ended or `close()`; rooms are re-joined with `since`. */
  reconnect(): void {
    this.socket.connect();
  }

  /** The id of the last entry delivered for `room`. */
  lastId(room: string): string | undefined {
    return this.rooms.get(room)?.seq.lastId;
  }

  /**
   * Joins `room` (again, if joined already) and delivers what was missed since the last id, paging
   * through `history` until caught up. A join already under way for the room (the re-sync that
   * follows a connect, say) is shared: its entries are this call's result too.
   */
  async join(room: string): Promise<JoinResult> {
    let state = this.rooms.get(room);
    const fresh = !state;
    if (!state) this.rooms.set(room, (state = { seq: new RoomSequencer() }));
    if (state.joining) {
      try {
        return await state.joining;
      } catch {
        // That one failed (it was sent on a connection that dropped, say): try on our own.
      }
    }
    try {
      return await this.joinOnce(room, state);
    } catch (err) {
      if (fresh && this.rooms.get(room) === state) this.rooms.delete(room);
      else state.seq.abandonCatchUp();
      throw err;
    }
  }

  /**
   * A page of `room`'s log, which this connection must have joined: the newest entries, those
   * before `before` (scrolling back), or those after `after`. It delivers no events.
   */
  async history(room: string, options: { before?: string; after?: string; limit?: number } = {}): Promise<HistoryPage> {
    const ack = await this.request<Ack<HistoryAck>>("history", { room, ...options });
    if (!ack.ok) throw new ChatError(ack.error.code, ack.error.message, ack.error.retryAfterMs);
    const { messages, complete, gap, more, cursor } = ack;
    return { entries: messages as unknown as HistoryEntry[], complete, gap, more, ...(cursor !== undefined && { cursor }) };
  }

  /**
   * Re-joins `room` until it works (or the connection drops, after which the reconnect syncs
   * again): used after a reconnect, a re-sync request and a broken chain.
   */
  private sync(room: string): Promise<void> {
    const state = this.rooms.get(room);
    if (!state) return Promise.resolve();
    state.syncing ??= (async () => {
      for (let attempt = 0; this.rooms.get(room) === state; attempt++) {
        try {
          // A join under way (one sent before the connection was up, say) may do the work.
          await (state.joining ?? this.joinOnce(room, state));
          return;
        } catch (err) {
          if (!(err instanceof ChatError) || !RETRYABLE.has(err.code) || !this.socket.connected) {
            state.seq.abandonCatchUp();
            throw err;
          }
          await delay(Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random()));
        }
      }
    })().finally(() => (state.syncing = undefined));
    return state.syncing;
  }

  /** One join, shared while it runs (see `join`). */
  private joinOnce(room: string, state: RoomState): Promise<JoinResult> {
    const running = this.joinAndPage(room, state).finally(() => {
      if (state.joining === running) state.joining = undefined;
    });
    state.joining = running;
    return running;
  }

  /**
   * Joins, then pages forward with `history {after}` while the catch-up says `more`, delivering
   * each page as it comes. Live entries that arrive meanwhile are held by the sequencer (a failure
   * keeps them) and are merged at the end.
   */
  private async joinAndPage(room: string, state: RoomState): Promise<JoinResult> {
    const since = state.seq.beginCatchUp();
    const ack = await this.request<Ack<JoinAck>>("join", since ? { room, since } : { room });
    if (!ack.ok) throw new ChatError(ack.error.code, ack.error.message, ack.error.retryAfterMs);
    const delivered: JoinResult["entries"] = [];
    const deliverAll = (entries: RoomEntry[]) => {
      for (const entry of entries) {
        const payload = this.deliver(entry);
        if (payload) delivered.push(payload);
      }
    };
    // A server from before paging has no `gap`: there, an incomplete catch-up was a gap.
    let gap = since !== undefined && (ack.gap ?? !ack.complete);
    if (gap) this.emitReserved("gap", { room });
    if (ack.complete && ack.messages.length === 0) state.seq.startAt(LOG_START);
    deliverAll(state.seq.replay(ack.messages.map((entry) => ({ ...entry, room }))));
    // Without `since`, `more` means older history: that is for scrolling back, not catching up.
    let cursor = since !== undefined && ack.more ? ack.cursor : undefined;
    while (cursor) {
      const page = await this.request<Ack<HistoryAck>>("history", { room, after: cursor, limit: PAGE });
      if (!page.ok) throw new ChatError(page.error.code, page.error.message, page.error.retryAfterMs);
      if (page.gap) {
        // Trimmed while we paged: say so once, and carry on from what is there.
        if (!gap) this.emitReserved("gap", { room });
        gap = true;
      }
      deliverAll(state.seq.replay(page.messages.map((entry) => ({ ...entry, room }))));
      cursor = page.more ? page.cursor : undefined;
    }
    deliverAll(state.seq.finishCatchUp());
    const complete = since !== undefined ? !gap : ack.complete;
    // A server from before `memberCount` listed every member.
    const memberCount = ack.memberCount ?? ack.members.length;
    this.emitReserved("joined", { room, members: ack.members, memberCount, complete });
    const read = { ...(ack.lastRead !== undefined && { lastRead: ack.lastRead }), ...(ack.unread !== undefined && { unread: ack.unread }) };
    return { members: ack.members, memberCount, entries: delivered, complete, ...read };
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    const ack = await this.request<Ack>("leave", { room });
    if (!ack.ok) throw new ChatError(ack.error.code, ack.error.message);
  }

  /**
   * Sends `text` to `room`, retrying while the server is unavailable or silent. Resolves once the
   * message is stored; throws a `ChatError` for an error a retry cannot fix.
   */
  async send(room: string, text: string, options: { clientMsgId?: string } = {}): Promise<{ id: string; ts: number }> {
    const clientMsgId = options.clientMsgId ?? randomId();
    let last: ChatError | undefined;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      // Backoff with jitter, but never sooner than a rate limit said.
      if (attempt > 0) await delay(Math.max(Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random()), last?.retryAfterMs ?? 0));
      try {
        // After a reconnect the room is re-joined first: a send must not overtake it.
        const state = this.rooms.get(room);
        await (state?.syncing ?? state?.joining)?.catch(() => undefined);
        const ack = await this.request<Ack<{ id: string; ts: number }>>("message", { room, text, clientMsgId });
        if (ack.ok) return { id: ack.id, ts: ack.ts };
        last = new ChatError(ack.error.code, ack.error.message, ack.error.retryAfterMs);
        if (ack.error.code === "not_in_room" && this.rooms.has(room)) {
          // A new connection (to another pod, say) that has not re-joined yet: re-join, then retry.
          await this.sync(room).catch(() => undefined);
          continue;
        }
        if (!RETRYABLE.has(ack.error.code)) throw last;
      } catch (err) {
        if (!(err instanceof ChatError) || err.code !== "timeout") throw err;
        last = err;
      }
    }
    throw last ?? new ChatError("unavailable", "not sent");
  }

  close(): void {
    clearTimeout(this.retry);
    this.socket.close();
  }

  private async request<T>(event: string, payload: unknown): Promise<T> {
    try {
      return (await this.socket.timeout(this.timeoutMs).emitWithAck(event, payload)) as T;
    } catch {
      throw new ChatError("timeout", `no answer to ${event} within ${this.timeoutMs} ms`);
    }
  }

  private async resyncAll(): Promise<void> {
    const results = await Promise.allSettled([...this.rooms.keys()].map((room) => this.sync(room)));
    if (this.socket.connected && results.every((r) => r.status === "fulfilled")) this.emitReserved("status", true);
  }

  private accept(entry: RoomEntry): void {
    const verdict = this.rooms.get(entry.room)?.seq.accept(entry);
    if (verdict === "deliver") this.deliver(entry);
    // Something between our last entry and this one never reached us: fetch it, in order.
    else if (verdict === "gap") void this.sync(entry.room).catch(() => undefined);
  }

  /**
   * Emits an entry the sequencer let through, and returns its payload; undefined for an entry of a
   * kind this client does not know (the sequencer keeps it as the last id, it is not shown).
   */
  private deliver(entry: RoomEntry): ChatMessage | Notification | MessageEditedEvent | MessageDeletedEvent | undefined {
    const { event, ...payload } = entry;
    switch (event) {
      case "notification":
        this.emitReserved("notification", payload as unknown as Notification);
        return payload as unknown as Notification;
      case "message_edited":
      case "message_deleted":
        this.emitReserved(event, payload as never);
        return payload as unknown as MessageEditedEvent | MessageDeletedEvent;
      case undefined:
      case "message":
        break;
      default:
        return undefined;
    }
    this.emitReserved("message", payload as unknown as ChatMessage);
    return payload as unknown as ChatMessage;
  }
}

/** Connects a `ChatClient`. */
export function createChatClient(url: string, options: ChatClientOptions): ChatClient {
  return new ChatClient(url, options);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random id that works outside secure contexts too (where `crypto.randomUUID` is missing). */
function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
