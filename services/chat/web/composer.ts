// The message box: sending, telling the room one is typing, and Arrow Up to edit one's last message.
import type { ChatClient } from "@chat/client";
import { scrollToBottom } from "./message-list.js";
import { showToastFor } from "./notices.js";
import type { RoomState } from "./room-state.js";
import { typingSender } from "./typing.js";

interface Target {
  client: ChatClient;
  state: RoomState;
  online: boolean;
  me: string | undefined;
}

export function bindComposer(target: () => Target | undefined): void {
  const form = document.getElementById("send-form") as HTMLFormElement;
  const text = document.getElementById("text") as HTMLInputElement;
  const send = document.getElementById("send") as HTMLButtonElement;

  const sendTyping = typingSender(() => {
    const to = target();
    return to?.online ? { client: to.client, room: to.state.room } : undefined;
  });
  text.addEventListener("input", sendTyping);
  text.addEventListener("keydown", (event) => {
    // Arrow Up in an empty box edits one's last message, as in most chat apps.
    const to = target();
    if (event.key !== "ArrowUp" || text.value || !to) return;
    const mine = to.state.messages.findLast((m) => m.user.id === to.me);
    if (!mine) return;
    event.preventDefault();
    document.querySelector<HTMLButtonElement>(`#messages li[data-id="${CSS.escape(mine.id)}"] .edit`)?.click();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const to = target();
    const value = text.value;
    if (!to || !value) return;
    send.disabled = true;
    // Every failure is shown here: nothing is left to reject.
    to.client
      .send(to.state.room, value)
      .then(
        () => {
          text.value = "";
          scrollToBottom();
        },
        (err: unknown) => showToastFor("Not sent", err),
      )
      .finally(() => (send.disabled = text.disabled));
  });
}
