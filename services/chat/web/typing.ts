// "Ann is typing…": shown for 5 s after the last typing event, or until Ann's message arrives.
import type { ChatClient, User } from "@chat/client";
import type { RoomState } from "./room-state.js";

const line = document.getElementById("typing")!;
const SHOWN_MS = 5000;
/** The server passes one typing event per user and room every 2 s: sending more is waste. */
const SEND_EVERY_MS = 2000;

let shownRoom: RoomState | undefined;

export function renderTyping(current: RoomState | undefined): void {
  shownRoom = current;
  const names = [...(current?.typing.values() ?? [])].map((t) => t.user.name);
  line.textContent =
    names.length === 0
      ? ""
      : names.length === 1
        ? `${names[0]} is typing…`
        : names.length === 2
          ? `${names[0]} and ${names[1]} are typing…`
          : "Several people are typing…";
}

export function sawTyping(state: RoomState | undefined, user: User, current: RoomState | undefined): void {
  if (!state) return;
  clearTimeout(state.typing.get(user.id)?.timer);
  const timer = setTimeout(() => {
    state.typing.delete(user.id);
    if (state === shownRoom) renderTyping(state);
  }, SHOWN_MS);
  state.typing.set(user.id, { user, timer });
  if (state === current) renderTyping(state);
}

export function sawMessage(state: RoomState, userId: string): void {
  const typing = state.typing.get(userId);
  if (!typing) return;
  clearTimeout(typing.timer);
  state.typing.delete(userId);
  if (state === shownRoom) renderTyping(state);
}

/** An input listener that tells the room, at most every 2 s. */
export function typingSender(target: () => { client: ChatClient; room: string } | undefined): () => void {
  let lastRoom = "";
  let lastAt = 0;
  return () => {
    const to = target();
    if (!to) return;
    const now = Date.now();
    if (to.room === lastRoom && now - lastAt < SEND_EVERY_MS) return;
    lastRoom = to.room;
    lastAt = now;
    to.client.typing(to.room).catch(() => undefined);
  };
}
