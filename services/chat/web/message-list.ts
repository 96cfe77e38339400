// The message list: day separators, consecutive messages of one author grouped under one name,
// and the author's inline edit and delete.
import type { Notification } from "@chat/client";
import { nameOf, seen } from "./identity.js";
import type { RoomState, Shown } from "./room-state.js";

const list = document.getElementById("messages") as HTMLOListElement;

export interface ListActions {
  /** The signed-in user's id: their messages can be edited and deleted. */
  me(): string | undefined;
  edit(message: Shown, text: string): Promise<void>;
  delete(message: Shown): Promise<void>;
}

/** Messages of one author this close in time share a name. */
const GROUP_MS = 5 * 60_000;

const dayOf = (ts: number) => new Date(ts).toDateString();

function dayLabel(ts: number): string {
  const day = dayOf(ts);
  if (day === dayOf(Date.now())) return "Today";
  if (day === dayOf(Date.now() - 86_400_000)) return "Yesterday";
  return new Date(ts).toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

function span(className: string, textContent: string): HTMLSpanElement {
  return Object.assign(document.createElement("span"), { className, textContent });
}

function button(className: string, textContent: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = Object.assign(document.createElement("button"), { type: "button", className: `link ${className}`, textContent });
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function messageItem(message: Shown, previous: Shown | undefined, actions: ListActions): HTMLLIElement {
  const li = document.createElement("li");
  li.dataset.id = message.id;
  const grouped = previous && previous.user.id === message.user.id && dayOf(previous.ts) === dayOf(message.ts) && message.ts - previous.ts < GROUP_MS;
  li.className = grouped ? "msg cont" : "msg first";
  seen(message.user);
  const when = span("when", new Date(message.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  li.append(when, nameOf(span("who", ""), message.user), span("text", message.text));
  if (message.editedAt) li.append(span("edited", "(edited)"));
  if (message.user.id === actions.me()) {
    li.classList.add("mine");
    const tools = span("actions", "");
    tools.append(
      button("edit", "Edit", `Edit your message: ${message.text.slice(0, 40)}`, () => startEdit(li, message, actions)),
      button("delete", "Delete", `Delete your message: ${message.text.slice(0, 40)}`, () => confirmDelete(li, message, actions)),
    );
    li.append(tools);
  }
  return li;
}

function dayItem(ts: number): HTMLLIElement {
  const li = Object.assign(document.createElement("li"), { className: "day", textContent: dayLabel(ts) });
  li.setAttribute("role", "separator");
  return li;
}

function items(messages: Shown[], from: number, actions: ListActions): HTMLLIElement[] {
  const out: HTMLLIElement[] = [];
  for (let i = from; i < messages.length; i++) {
    const message = messages[i]!;
    const previous = messages[i - 1];
    if (!previous || dayOf(previous.ts) !== dayOf(message.ts)) out.push(dayItem(message.ts));
    out.push(messageItem(message, previous, actions));
  }
  return out;
}

const atBottom = () => list.scrollTop + list.clientHeight >= list.scrollHeight - 8;

/**
 * Draws a room's messages anew (a room switch, a page of older ones, a delete), keeping what the
 * reader was looking at in place. `aria-busy` keeps screen readers from reading the whole list out.
 */
export function renderAll(state: RoomState | undefined, actions: ListActions, keep: "bottom" | "anchor" = "bottom"): void {
  const height = list.scrollHeight;
  const top = list.scrollTop;
  list.setAttribute("aria-busy", "true");
  list.replaceChildren(...(state ? items(state.messages, 0, actions) : []));
  if (state?.startReached && state.messages.length)
    list.prepend(Object.assign(document.createElement("li"), { className: "notice", textContent: "The start of this conversation." }));
  list.scrollTop = keep === "bottom" ? list.scrollHeight : top + (list.scrollHeight - height);
  list.removeAttribute("aria-busy");
}

/** Appends one new message (the newest), grouped with the one before it. */
export function appendMessage(state: RoomState, message: Shown, actions: ListActions): void {
  const at = state.messages.indexOf(message);
  if (at !== state.messages.length - 1) return renderAll(state, actions, "anchor");
  const follow = atBottom();
  list.append(...items(state.messages, at, actions));
  if (follow) list.scrollTop = list.scrollHeight;
}

/** Redraws one message in place (an edit). */
export function redrawMessage(state: RoomState, message: Shown, actions: ListActions): void {
  const old = list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`);
  const at = state.messages.indexOf(message);
  if (old && at >= 0) old.replaceWith(messageItem(message, state.messages[at - 1], actions));
}

export function notice(text: string): void {
  const follow = atBottom();
  list.append(Object.assign(document.createElement("li"), { className: "notice", textContent: text }));
  if (follow) list.scrollTop = list.scrollHeight;
}

export function renderNotification(notification: Notification): void {
  notice(`${notification.type}: ${JSON.stringify(notification.data)}`.slice(0, 500));
}

/** Enter saves, Escape cancels: the edit box takes the text's place. */
function startEdit(li: HTMLLIElement, message: Shown, actions: ListActions): void {
  const text = li.querySelector(".text");
  if (!text || li.querySelector(".edit-box")) return;
  const box = Object.assign(document.createElement("input"), { className: "edit-box", value: message.text, maxLength: 4000 });
  box.setAttribute("aria-label", "Edit message; Enter saves, Escape cancels");
  text.replaceWith(box);
  box.focus();
  const restore = () => {
    box.replaceWith(text);
    li.querySelector<HTMLButtonElement>(".edit")?.focus();
  };
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") restore();
    if (event.key !== "Enter") return;
    event.preventDefault();
    const value = box.value;
    if (!value.trim() || value === message.text) return restore();
    box.disabled = true;
    actions.edit(message, value).then(
      () => box.isConnected && restore(),
      () => {
        box.disabled = false;
        box.focus();
      },
    );
  });
}

/** The first click asks, the second deletes: a slip of the finger deletes nothing. */
function confirmDelete(li: HTMLLIElement, message: Shown, actions: ListActions): void {
  const del = li.querySelector<HTMLButtonElement>(".delete");
  if (!del) return;
  if (del.dataset.armed !== "1") {
    del.dataset.armed = "1";
    del.textContent = "Confirm delete";
    del.setAttribute("aria-label", "Confirm: delete this message");
    setTimeout(() => {
      del.dataset.armed = "";
      del.textContent = "Delete";
    }, 5000);
    return;
  }
  del.disabled = true;
  actions.delete(message).catch(() => (del.disabled = false));
}

/** Scrolled near the top: time to page in older messages. */
export function onScrolledToTop(callback: () => void): void {
  list.addEventListener("scroll", () => {
    if (list.scrollTop < 60) callback();
  });
}

export function scrollToBottom(): void {
  list.scrollTop = list.scrollHeight;
}
