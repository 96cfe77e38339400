// What the page knows of each room it is in: the messages loaded (older ones page in as the user
// scrolls back), edits and deletes (which may arrive before the message they change, when paging
// back), unread count, members and who is typing.
import type { ChatMessage, User } from "@chat/client";

/** A log entry as `history` and `join` give it: `logId ?? id` is its place in the log. */
export type Entry = { event?: string; id: string; logId?: string; text?: unknown; editedAt?: unknown } & Record<string, unknown>;

export interface Shown extends ChatMessage {
  editedAt?: number;
}

export interface RoomState {
  room: string;
  /** What the sidebar says: `#lobby`, or `@Bob` for a direct conversation. */
  label: string;
  /** Loaded messages, oldest first. */
  messages: Shown[];
  edits: Map<string, { text: string; editedAt: number }>;
  deleted: Set<string>;
  unread: number;
  /** The oldest log id loaded: where scrolling back continues. */
  oldest?: string;
  /** The start of the log is loaded: nothing older to page in. */
  startReached: boolean;
  loadingOlder: boolean;
  members: Map<string, User>;
  /** Members in all: more than `members` holds in a big room, whose joins and leaves are not announced. */
  memberCount: number;
  typing: Map<string, { user: User; timer: ReturnType<typeof setTimeout> }>;
}

export const rooms = new Map<string, RoomState>();

export function roomState(room: string, label = `#${room}`): RoomState {
  let state = rooms.get(room);
  if (!state) {
    state = {
      room,
      label,
      messages: [],
      edits: new Map(),
      deleted: new Set(),
      unread: 0,
      startReached: false,
      loadingOlder: false,
      members: new Map(),
      memberCount: 0,
      typing: new Map(),
    };
    rooms.set(room, state);
  }
  return state;
}

export const logIdOf = (entry: { id: string; logId?: string }): string => entry.logId ?? entry.id;

function compare(a: string, b: string): number {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am - bm || as - bs;
}

/** Adds a message where it belongs (by id); false when it is there already or was deleted. */
export function addMessage(state: RoomState, message: ChatMessage): Shown | undefined {
  if (state.deleted.has(message.id) || state.messages.some((m) => m.id === message.id)) return undefined;
  const edit = state.edits.get(message.id);
  const shown: Shown = edit ? { ...message, text: edit.text, editedAt: edit.editedAt } : { ...message };
  let at = state.messages.length;
  while (at > 0 && compare(state.messages[at - 1]!.id, message.id) > 0) at--;
  state.messages.splice(at, 0, shown);
  return shown;
}

/** Records an edit; returns the message it changed, if loaded. */
export function applyEdit(state: RoomState, id: string, text: string, editedAt: number): Shown | undefined {
  const known = state.edits.get(id);
  if (!known || known.editedAt <= editedAt) state.edits.set(id, { text, editedAt });
  const message = state.messages.find((m) => m.id === id);
  if (message && (message.editedAt ?? 0) <= editedAt) Object.assign(message, { text, editedAt });
  return message;
}

/** Records a delete; true when a loaded message went. */
export function applyDelete(state: RoomState, id: string): boolean {
  state.deleted.add(id);
  const before = state.messages.length;
  state.messages = state.messages.filter((m) => m.id !== id);
  return state.messages.length !== before;
}

/** Takes in a page of older entries (oldest first) from `history {before}`. */
export function addOlder(state: RoomState, entries: Entry[], room: string): void {
  for (const entry of entries) {
    if (entry.event === "message_edited") applyEdit(state, entry.id, String(entry.text), Number(entry.editedAt));
    else if (entry.event === "message_deleted") applyDelete(state, entry.id);
  }
  for (const entry of entries) if (entry.event === "message") addMessage(state, { ...(entry as unknown as ChatMessage), room });
}

/** Moves the scroll-back cursor to `id` if it is older than the current one. */
export function noteOldest(state: RoomState, id: string | undefined): void {
  if (id && (!state.oldest || compare(id, state.oldest) < 0)) state.oldest = id;
}
