import type { Server, Socket } from "socket.io";
import type {
  Ack,
  AmendAck,
  ChatMessage,
  DeleteRequest,
  DmAck,
  DmEvent,
  DmRequest,
  EditRequest,
  HistoryAck,
  HistoryRequest,
  JoinAck,
  JoinRequest,
  LeaveRequest,
  MessageDeleted,
  MessageEdited,
  MessageRequest,
  PresenceEvent,
  ProtocolError,
  ReadEvent,
  ReadRequest,
  RoomsAck,
  SessionEnded,
  TypingEvent,
  TypingRequest,
  User,
} from "@chat/shared";
import type { Session } from "./auth.js";
import type { SHUTDOWN_EVENT } from "./drain.js";

/**
 * A client event: its payload (the zod schema's type in protocol.ts) and the ack it gets. The
 * payload is what a well-behaved client sends; handlers still take it as `unknown` and validate it,
 * since any client can send anything.
 */
type Request<Payload, Answer extends object = object> = (payload: Payload, ack: (answer: Ack<Answer>) => void) => void;

/** The events a client sends, each with an ack (docs/protocol.md). */
export interface ClientToServer {
  join: Request<JoinRequest, JoinAck>;
  leave: Request<LeaveRequest, { room: string }>;
  history: Request<HistoryRequest, HistoryAck>;
  message: Request<MessageRequest, { id: string; ts: number; duplicate?: true }>;
  // Issue 19 (docs/protocol.md).
  typing: Request<TypingRequest>;
  dm: Request<DmRequest, DmAck>;
  edit: Request<EditRequest, AmendAck>;
  delete: Request<DeleteRequest, AmendAck>;
  read: Request<ReadRequest, ReadEvent>;
  rooms: Request<Record<string, never>, RoomsAck>;
}

/** A live edit or delete: the entry's own log id is `logId`, `id` is the message's (room-log-amend.ts). */
type Amended<Body> = Body & { logId: string; prev: string; ts: number };

/** The events the chat sends to a client. Notifications come from the notifier, over the bus. */
export interface ServerToClient {
  message: (message: ChatMessage) => void;
  presence: (event: PresenceEvent) => void;
  typing: (event: TypingEvent) => void;
  /** Another user started a direct conversation with this one. */
  dm: (event: DmEvent) => void;
  message_edited: (event: Amended<MessageEdited>) => void;
  message_deleted: (event: Amended<MessageDeleted>) => void;
  /** This user's read marker moved, on another of their connections. */
  read: (event: ReadEvent) => void;
  /** After a bus outage: re-join every room with `since`. */
  resync: (why: { reason: "bus_reconnected" }) => void;
  session_ended: (ended: SessionEnded) => void;
  /** A backend kicked (or banned) this connection's user from `room` (docs/server-api.md). */
  kicked: (kicked: { room: string; reason?: string }) => void;
  shutdown: (why: typeof SHUTDOWN_EVENT) => void;
  /** An event sent without an ack callback. */
  protocol_error: (problem: { event: string; error: ProtocolError }) => void;
}

/** Pods talk through the Redis adapter only: no server-to-server events. */
export type InterServer = Record<never, never>;

/** What a connection keeps on `socket.data`, set by the handshake before any handler runs. */
export interface SocketData {
  session: Session;
  user: User;
  /** Rooms whose `join` is under way (rooms.ts): they count against the cap already. */
  joining?: Set<string>;
  /** The per-connection event bucket (events.ts). */
  eventTokens?: number;
  eventAt?: number;
  /**
   * Until the socket is connected: what uncounts it from the per-user connection cap should its
   * transport close first (handshake.ts); then the shared `uncountOnDisconnect` takes over.
   */
  release?: (() => void) | undefined;
}

export type ChatServerIo = Server<ClientToServer, ServerToClient, InterServer, SocketData>;
export type ChatSocket = Socket<ClientToServer, ServerToClient, InterServer, SocketData>;
