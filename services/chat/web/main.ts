// The web client: rooms and direct conversations in a sidebar with unread counts, scroll-back,
// inline edit and delete, typing, a reconnect banner. Built on @chat/client, without a framework.
import { ChatClient, type ChatMessage, type User } from "@chat/client";
import { appendMessage, notice, onScrolledToTop, redrawMessage, renderAll, renderNotification, type ListActions } from "./message-list.js";
import { showBanner, showError, showToastFor } from "./notices.js";
import { addMessage, addOlder, applyDelete, applyEdit, logIdOf, noteOldest, roomState, rooms, type Entry, type RoomState } from "./room-state.js";
import { renderMembers as drawMembers, renderSidebar as drawSidebar, type SidebarActions } from "./sidebar.js";
import { renderTyping, sawMessage, sawTyping } from "./typing.js";
import { bindComposer } from "./composer.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  status: $<HTMLSpanElement>("status"),
  joinForm: $<HTMLFormElement>("join-form"),
  name: $<HTMLInputElement>("name"),
  room: $<HTMLInputElement>("room"),
  title: $<HTMLHeadingElement>("room-title"),
  roomList: $<HTMLUListElement>("room-list"),
  sidebar: $<HTMLElement>("sidebar"),
  menu: $<HTMLButtonElement>("menu"),
  text: $<HTMLInputElement>("text"),
  send: $<HTMLButtonElement>("send"),
};

// With AUTH_MODE=jwt the page is opened as /#token=<JWT> by the app that issued the token (a
// fragment never reaches server logs). It is read once and dropped from the address bar, so it is
// not left in the history, a bookmark or a screenshot; it stays in memory for reconnects.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) history.replaceState(null, "", location.pathname + location.search);

/** The token's `sub` (not verified here: the server does that), to tell one's own messages. */
function subOf(jwt: string): string | undefined {
  try {
    return (JSON.parse(atob(jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))) as { sub?: string }).sub;
  } catch {
    return undefined;
  }
}

let client: ChatClient | undefined;
let myId: string | undefined;
let currentName = "";
let current: RoomState | undefined;
let online = false;
let reconnecting = false;
let caughtUp = 0;

ui.name.value = localStorage.getItem("chat.name") ?? "";
ui.room.value = localStorage.getItem("chat.room") ?? ui.room.value;

const actions: ListActions = {
  me: () => myId,
  async edit(message, text) {
    try {
      await client!.edit(message.room, message.id, text);
    } catch (err) {
      showToastFor("Not edited", err);
      throw err;
    }
  },
  async delete(message) {
    try {
      await client!.delete(message.room, message.id);
    } catch (err) {
      showToastFor("Not deleted", err);
      throw err;
    }
  },
};

function setStatus(state: "online" | "offline" | "reconnecting"): void {
  online = state === "online";
  ui.status.dataset.state = state;
  ui.status.textContent = state;
  ui.text.disabled = ui.send.disabled = !online || !current;
}

const sidebar: SidebarActions = {
  current: () => current,
  me: () => myId,
  open: (state) => show(state),
  leave: (state) => void leaveRoom(state),
  message: (user) => void startDm(user),
};
const renderSidebar = () => drawSidebar(sidebar);
const renderMembers = () => drawMembers(sidebar);

/** Marks the shown room read up to its newest entry, when the page is being looked at. */
function markRead(state: RoomState): void {
  const last = client?.lastId(state.room);
  state.unread = 0;
  if (client && last && last !== "0-0" && document.visibilityState === "visible") client.markRead(state.room, last).catch(() => undefined);
}

function show(state: RoomState): void {
  current = state;
  ui.title.textContent = state.label;
  localStorage.setItem("chat.room", state.room);
  ui.sidebar.classList.remove("open");
  ui.menu.setAttribute("aria-expanded", "false");
  markRead(state);
  renderAll(state, actions);
  renderSidebar();
  renderMembers();
  renderTyping(current);
  setStatus(client?.socket.connected ? "online" : "offline");
}

function remember(): void {
  localStorage.setItem("chat.rooms", JSON.stringify([...rooms.values()].map(({ room, label }) => ({ room, label }))));
}

async function enter(room: string, label?: string, focus = true): Promise<void> {
  if (!client) return;
  const state = roomState(room, label);
  if (label) state.label = label;
  try {
    const joined = await client.join(room);
    const first = joined.entries[0];
    if (first) noteOldest(state, logIdOf(first));
    if (!state.oldest) state.startReached = joined.complete;
    if (state.oldest && joined.complete && !joined.entries.length) state.startReached = true;
    if (joined.unread !== undefined && state !== current) state.unread = joined.unread;
    showError(undefined);
    remember();
    if (focus || !current) show(state);
    else renderSidebar();
  } catch (err) {
    if (!state.messages.length) rooms.delete(room);
    showToastFor(`Could not join ${room}`, err);
    renderSidebar();
  }
}

async function leaveRoom(state: RoomState): Promise<void> {
  rooms.delete(state.room);
  remember();
  await client?.leave(state.room).catch(() => undefined);
  if (current === state) {
    current = undefined;
    const next = rooms.values().next().value;
    if (next) show(next);
    else {
      ui.title.textContent = "No room yet";
      renderAll(undefined, actions);
      renderMembers();
      setStatus(online ? "online" : "offline");
    }
  }
  renderSidebar();
}

async function startDm(user: User): Promise<void> {
  try {
    const room = await client!.dm(user.id);
    await enter(room, `@${user.name}`);
  } catch (err) {
    showToastFor(`Could not message ${user.name}`, err);
  }
}

async function loadOlder(): Promise<void> {
  const state = current;
  if (!client || !state || state.startReached || state.loadingOlder || !state.oldest) return;
  state.loadingOlder = true;
  try {
    const page = await client.history(state.room, { before: state.oldest, limit: 50 });
    addOlder(state, page.entries as unknown as Entry[], state.room);
    const first = page.entries[0];
    if (first) noteOldest(state, logIdOf(first));
    state.startReached = !page.more;
    if (state === current) renderAll(state, actions, "anchor");
  } catch (err) {
    showToastFor("Could not load older messages", err);
  } finally {
    state.loadingOlder = false;
  }
}

function onMessage(message: ChatMessage): void {
  const state = rooms.get(message.room);
  if (!state) return;
  if (reconnecting) caughtUp++;
  const shown = addMessage(state, message);
  if (!shown) return;
  if (!state.oldest) noteOldest(state, message.id);
  sawMessage(state, message.user.id);
  if (state === current) {
    appendMessage(state, shown, actions);
    // One's own messages count as read too, so that they are not unread after a reload.
    markRead(state);
  } else if (message.user.id !== myId) {
    state.unread++;
    renderSidebar();
  }
}

function connect(name: string): ChatClient {
  // WebSocket first (long-polling as a fallback). The client re-joins every room with the last id
  // it saw after any reconnect, so nothing said meanwhile is missed, and nothing twice.
  const next = new ChatClient(location.origin, { auth: token ? { token } : { name } });
  myId = token ? subOf(token) : name;
  next.on("status", (up) => {
    setStatus(up ? "online" : "reconnecting");
    if (!up && !reconnecting) {
      reconnecting = true;
      caughtUp = 0;
      showBanner("Reconnecting…");
    } else if (up && reconnecting) {
      reconnecting = false;
      showBanner(`Reconnected: caught up ${caughtUp} message${caughtUp === 1 ? "" : "s"}.`, 5000);
    }
  });
  next.on("slow_consumer", () => notice("This page fell behind the room (a slow link?): reconnecting and catching up."));
  next.on("joined", ({ room, members, memberCount }) => {
    const state = rooms.get(room);
    if (!state) return;
    state.members = new Map(members.map((u) => [u.id, u]));
    state.memberCount = memberCount;
    if (state === current) renderMembers();
  });
  next.socket.on("connect_error", (err: Error & { data?: { code?: string } }) => {
    setStatus("offline");
    showError(`Cannot connect: ${err.message}`);
    if (err.data?.code === "unauthorized") next.close();
  });
  next.on("message", onMessage);
  next.on("message_edited", (e) => {
    const state = rooms.get(e.room);
    const message = state && applyEdit(state, e.id, e.text, e.editedAt);
    if (state && message && state === current) redrawMessage(state, message, actions);
  });
  next.on("message_deleted", (e) => {
    const state = rooms.get(e.room);
    if (state && applyDelete(state, e.id) && state === current) renderAll(state, actions, "anchor");
  });
  next.on("notification", (n) => (n.room === undefined || n.room === current?.room) && renderNotification(n));
  next.on("gap", ({ room }) => room === current?.room && notice("Some older messages are no longer available."));
  next.on("typing", (e) => sawTyping(rooms.get(e.room), e.user, current));
  next.on("dm", ({ room, user }) => void enter(room, `@${user.name}`, false));
  next.on("read", ({ room, id }) => {
    const state = rooms.get(room);
    if (state && client?.lastId(room) === id) {
      state.unread = 0;
      renderSidebar();
    }
  });
  next.on("presence", (event) => {
    const state = rooms.get(event.room);
    if (!state) return;
    if (event.action === "join") state.members.set(event.user.id, event.user);
    else state.members.delete(event.user.id);
    state.memberCount = state.members.size;
    if (state !== current) return;
    renderMembers();
    notice(`${event.user.name} ${event.action === "join" ? "joined" : "left"}`);
  });
  return next;
}

/** The sidebar after connecting: the rooms this connection is in, with their unread counts. */
async function refreshRoomList(): Promise<void> {
  const list = await client?.roomList().catch(() => undefined);
  for (const summary of list ?? []) {
    const state = rooms.get(summary.room);
    if (!state) continue;
    if (summary.dm && state.label.startsWith("#")) state.label = `@${summary.dm}`;
    if (state !== current) state.unread = summary.unread;
  }
  renderSidebar();
}

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  localStorage.setItem("chat.name", name);
  if (!client || name !== currentName) {
    client?.close();
    rooms.clear();
    current = undefined;
    currentName = name;
    client = connect(name);
    const saved = JSON.parse(localStorage.getItem("chat.rooms") ?? "[]") as { room: string; label: string }[];
    client.socket.once("connect", () => {
      void (async () => {
        await Promise.all(saved.filter((r) => r.room !== room).map((r) => enter(r.room, r.label, false)));
        await enter(room);
        await refreshRoomList();
      })();
    });
  } else {
    void enter(room);
  }
});

ui.menu.addEventListener("click", () => {
  const open = ui.sidebar.classList.toggle("open");
  ui.menu.setAttribute("aria-expanded", String(open));
  if (open) ui.roomList.querySelector<HTMLButtonElement>("button")?.focus();
});

bindComposer(() => (client && current ? { client, state: current, online, me: myId } : undefined));

onScrolledToTop(() => void loadOlder());
document.addEventListener("visibilitychange", () => current && markRead(current));
