import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { Emitter } from "@socket.io/component-emitter";
import { LOG_START, compareLogIds, logIdOf } from "@chat/shared/log-id";
import { SLOW_CONSUMER_CLOSE } from "@chat/shared/close-codes";
import type { Ack, ChatMessage, PresenceEvent, ProtocolError, ReplayedEntry, SessionEnded, User } from "@chat/shared";

export type { ChatMessage, PresenceEvent, SessionEnded, User };

export interface ChatClientOptions {
  /**
   * The handshake `auth`: `{ name }` in open mode, `{ token }` with JWT. A function is called
   * before every (re)connection, so it can hand out a fresh token; with one, a session ended by
   * its token's expiry reconnects at once with the next token.
   */
  auth: Record<string, unknown> | (() => Record<string, unknown> | Promise<Record<string, unknown>>);
  /**
   * How many times a `send` is tried when the server is unavailable or does not answer. Every try
   * carries the same `clientMsgId`, so the message is stored and delivered once.
   * @default 5
   */
  sendAttempts?: number;
  /**
   * Milliseconds to wait for an ack.
   * @default 5000
   */
  ackTimeoutMs?: number;
  /** More socket.io-client options. `transports` defaults to `["websocket", "polling"]`. */
  socket?: Partial<ManagerOptions & SocketOptions>;
}

/** A notifier event: in a room (with `room` and `prev`), for one user (`user`), or for everyone. */
export interface Notification {
  id: string;
  type: string;
  data: unknown;
  ts: number;
  room?: string;
  /** Room notifications only: the id in the room's log, and the entry before it. */
  logId?: string;
  prev?: string;
  user?: string;
}

/** A room event as the client delivers it: a chat message or a room notification. */
type RoomEntry = { id: string; logId?: string; prev: string; room: string; event?: string } & Record<string, unknown>;

export interface ClientEvents {
  /** A chat message, once, in log order per room, including those caught up after a reconnect. */
  message: (message: ChatMessage) => void;
  /** A notifier event: in a room (with `room`), for this user, or for everyone. */
  notification: (notification: Notification) => void;
  presence: (event: PresenceEvent) => void;
  /** The log no longer reached back to the last message seen here: some history is gone. */
  gap: (info: { room: string }) => void;
  /** A join (yours, or a re-join after a reconnect) answered: the members as of now. */
  joined: (info: { room: string; members: User[]; complete: boolean }) => void;
  /** Online again and every room re-synced; `false` while reconnecting. */
  status: (online: boolean) => void;
  /**
   * The server ended the session because of its token: `token_expired` (reconnected at once when
   * `auth` is a function, else get a new token and call `reconnect`), or `token_revoked` (stays
   * disconnected).
   */
  session_ended: (ended: SessionEnded) => void;
  /**
   * The server closed the connection because this client was not reading what it was sent
   * (`slow_consumer`: more than the pod's `MAX_CLIENT_BUFFER_BYTES` queued for it). Nothing to do:
   * the client reconnects and catches up from the room logs on its own, like after any drop.
   */
  slow_consumer: () => void;
}

export interface JoinResult {
  members: User[];
  /** The messages and room notifications this call delivered, oldest first. */
  entries: (ChatMessage | Notification)[];
  complete: boolean;
}

/** An error the server answered with: `code` is one of protocol v1's error codes. */
export class ChatError extends Error {
  constructor(
    readonly code: ProtocolError["code"] | "timeout",
    message: string,
    /** With `rate_limited`: how long the server asked to wait. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ChatError";
  }
}

interface RoomState {
  lastId?: string;
  /** Entries that arrived while a join was in flight, merged when it answers. */
  pending?: RoomEntry[];
  /** The re-join under way, if any: one at a time per room. */
  syncing?: Promise<void>;
}

/** The close code of the WebSocket behind a "transport close", when there was one. */
function closedBy(details: unknown): number | undefined {
  const code = (details as { context?: { code?: unknown } } | undefined)?.context?.code;
  return typeof code === "number" ? code : undefined;
}

/** Answers worth another try: the server (or its Redis) will come back. */
const RETRYABLE = new Set(["unavailable", "timeout", "rate_limited"]);

type JoinAck = Ack<{ room: string; members: User[]; messages: ReplayedEntry[]; complete: boolean }>;

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
      // A pod that drains disconnects us on purpose; reconnect at once, to another pod. So does
      // an expired session when `auth` can hand out a fresh token. A revoked one stays down.
      if (this.draining || (this.ended?.reconnect && typeof auth === "function")) socket.connect();
    });
    socket.on("shutdown", () => (this.draining = true));
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
  }

  /** Connects again after the session ended or `close()`; rooms are re-joined with `since`. */
  reconnect(): void {
    this.socket.connect();
  }

  /** The id of the last entry delivered for `room`. */
  lastId(room: string): string | undefined {
    return this.rooms.get(room)?.lastId;
  }

  /** Joins `room` (again, if joined already) and delivers what was missed since the last id. */
  async join(room: string): Promise<JoinResult> {
    let state = this.rooms.get(room);
    const fresh = !state;
    if (!state) this.rooms.set(room, (state = {}));
    try {
      return await this.joinOnce(room, state);
    } catch (err) {
      if (fresh) this.rooms.delete(room);
      else state.pending = undefined;
      throw err;
    }
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
          await this.joinOnce(room, state);
          return;
        } catch (err) {
          if (!(err instanceof ChatError) || !RETRYABLE.has(err.code) || !this.socket.connected) {
            state.pending = undefined;
            throw err;
          }
          await delay(Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random()));
        }
      }
    })().finally(() => (state.syncing = undefined));
    return state.syncing;
  }

  /** One join; live entries that arrive meanwhile wait in `pending`, which a failure keeps. */
  private async joinOnce(room: string, state: RoomState): Promise<JoinResult> {
    state.pending ??= [];
    const since = state.lastId;
    const ack = await this.request<JoinAck>("join", since ? { room, since } : { room });
    if (!ack.ok) throw new ChatError(ack.error.code, ack.error.message);
    const caughtUp: RoomEntry[] = ack.messages.map((entry) => ({ ...entry, room }));
    const buffered = state.pending ?? [];
    state.pending = undefined;
    if (!state.lastId && ack.complete && caughtUp.length === 0) state.lastId = LOG_START;
    const delivered: (ChatMessage | Notification)[] = [];
    for (const entry of [...caughtUp, ...buffered].sort((a, b) => compareLogIds(logIdOf(a), logIdOf(b)))) {
      const payload = this.deliver(state, entry);
      if (payload) delivered.push(payload);
    }
    this.emitReserved("joined", { room, members: ack.members, complete: ack.complete });
    if (since && !ack.complete) this.emitReserved("gap", { room });
    return { members: ack.members, entries: delivered, complete: ack.complete };
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
        await this.rooms.get(room)?.syncing?.catch(() => undefined);
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
    const state = this.rooms.get(entry.room);
    if (!state) return;
    if (state.pending) {
      state.pending.push(entry);
      return;
    }
    if (state.lastId && compareLogIds(logIdOf(entry), state.lastId) <= 0) return;
    if (state.lastId && entry.prev !== state.lastId) {
      // Something between our last entry and this one never reached us: fetch it, in order.
      state.pending = [entry];
      void this.sync(entry.room).catch(() => undefined);
      return;
    }
    this.deliver(state, entry);
  }

  /** Delivers an entry newer than the last one, and returns it; undefined for a duplicate. */
  private deliver(state: RoomState, entry: RoomEntry): ChatMessage | Notification | undefined {
    if (state.lastId && compareLogIds(logIdOf(entry), state.lastId) <= 0) return undefined;
    state.lastId = logIdOf(entry);
    const { event, ...payload } = entry;
    if (event === "notification") {
      this.emitReserved("notification", payload as unknown as Notification);
      return payload as unknown as Notification;
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
