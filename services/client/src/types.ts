import type { ManagerOptions, SocketOptions } from "socket.io-client";
import type { ChatMessage, DmEvent, PresenceEvent, ProtocolError, ReadEvent, SessionEnded, TypingEvent, User } from "@chat/shared";
import type { RetryBackoff } from "./backoff.js";
import type { MessageDeletedEvent, MessageEditedEvent } from "./conversations.js";

// The client's public types, apart from the class that uses them.

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
  /**
   * How a connection the server refused with `unavailable` or `rate_limited` is tried again: after
   * its `retryAfterMs`, plus a random extra in a window of `baseMs` that doubles with each refusal
   * in a row, up to `maxMs` (services/client/README.md, "Reconnect storms").
   * @default { baseMs: 1000, maxMs: 30000, random: Math.random }
   */
  retryBackoff?: RetryBackoff;
  /** More socket.io-client options. `transports` defaults to `["websocket", "polling"]`. */
  socket?: Partial<ManagerOptions & SocketOptions>;
}

/** A notifier event: in a room (with `room` and `prev`), for one user (`user`), or for everyone. */
export interface Notification {
  /**
   * Room events: the id in the room's log, like a message's id (keep it as the room's last id).
   * User and broadcast events, which no log keeps: the event id.
   */
  id: string;
  /** The id the event's sender gave it (or the notifier generated). */
  eventId: string;
  type: string;
  data: unknown;
  ts: number;
  room?: string;
  /** Room notifications only: the id of the room's entry before this one. */
  prev?: string;
  /** @deprecated Room notifications only: the same as `id`. */
  logId?: string;
  user?: string;
}

/** An entry of a `history` page: a message or a room notification, with the event's name. */
export type HistoryEntry = (ChatMessage & { event: "message" }) | (Notification & { event: "notification" });

/** A page of a room's log (see `ChatClient.history`). */
export interface HistoryPage {
  /** Oldest first. */
  entries: HistoryEntry[];
  /** Forward (`after`): every entry up to the newest is here. Back: the start of the log is here. */
  complete: boolean;
  /** Entries that belong here were trimmed from the log: nothing brings them back. */
  gap: boolean;
  /** The page was capped: ask again from `cursor` for the rest. */
  more: boolean;
  cursor?: string;
}

export interface ClientEvents {
  /** A chat message, once, in log order per room, including those caught up after a reconnect. */
  message: (message: ChatMessage) => void;
  /** A notifier event: in a room (with `room`), for this user, or for everyone. */
  notification: (notification: Notification) => void;
  presence: (event: PresenceEvent) => void;
  /** The log no longer reached back to the last message seen here: some history is gone. */
  gap: (info: { room: string }) => void;
  /**
   * A join (yours, or a re-join after a reconnect) answered and its catch-up delivered, paged to
   * the end: the members as of now; `complete` is false only after a `gap`. `memberCount` is how
   * many members there are: more than `members.length` in a big room, whose ack lists only the
   * first ones and whose joins and leaves are not announced (no `presence`; docs/protocol.md).
   */
  joined: (info: { room: string; members: User[]; memberCount: number; complete: boolean }) => void;
  /** The server refused the connection (`unavailable`, `rate_limited`): the client connects again in `delayMs`. */
  retrying: (info: { code: string; delayMs: number }) => void;
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
  /** A message's text was edited (live, or replayed by a catch-up). */
  message_edited: (event: MessageEditedEvent) => void;
  /** A message was deleted (live, or replayed by a catch-up). */
  message_deleted: (event: MessageDeletedEvent) => void;
  /** Someone in the room is typing (not stored; show it for about 5 s). */
  typing: (event: TypingEvent) => void;
  /** Another user started a direct conversation with this one: `join(room)` to read it. */
  dm: (event: DmEvent) => void;
  /** This user's read marker moved on another of their connections. */
  read: (event: ReadEvent) => void;
}

export interface JoinResult {
  /** Sorted by name; in a big room only the first ones (see `memberCount`). */
  members: User[];
  /** How many members the room has (more than `members.length` in a big room). */
  memberCount: number;
  /** The messages and room notifications this call delivered, oldest first. */
  entries: (ChatMessage | Notification | MessageEditedEvent | MessageDeletedEvent)[];
  /**
   * A re-join: everything since the last id held was delivered (false only with a gap). A first
   * join: the entries reach back to the start of the room's log.
   */
  complete: boolean;
  /** The user's read marker in the room, when set (servers from issue 19 on). */
  lastRead?: string;
  /** Entries after `lastRead`, at most 100 (show "99+"); servers from issue 19 on. */
  unread?: number;
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
