// The web client: pick a name, join a room, see members and messages live, send messages.
import { ChatClient, ChatError, type ChatMessage, type Notification, type User } from "@chat/client";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  status: $<HTMLSpanElement>("status"),
  joinForm: $<HTMLFormElement>("join-form"),
  name: $<HTMLInputElement>("name"),
  room: $<HTMLInputElement>("room"),
  error: $<HTMLParagraphElement>("error"),
  title: $<HTMLHeadingElement>("room-title"),
  messages: $<HTMLOListElement>("messages"),
  members: $<HTMLUListElement>("members"),
  sendForm: $<HTMLFormElement>("send-form"),
  text: $<HTMLInputElement>("text"),
  send: $<HTMLButtonElement>("send"),
};

// With AUTH_MODE=jwt the page is opened as /#token=<JWT> by the app that issued the token (a
// fragment never reaches server logs). It is read once and dropped from the address bar, so it is
// not left in the history, a bookmark or a screenshot; it stays in memory for reconnects.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) history.replaceState(null, "", location.pathname + location.search);

let client: ChatClient | undefined;
let currentName = "";
let currentRoom = "";
const members = new Map<string, User>();

ui.name.value = localStorage.getItem("chat.name") ?? "";
ui.room.value = localStorage.getItem("chat.room") ?? ui.room.value;

function showError(message: string | undefined): void {
  ui.error.hidden = !message;
  ui.error.textContent = message ?? "";
}

function setStatus(state: "online" | "offline" | "reconnecting"): void {
  ui.status.dataset.state = state;
  ui.status.textContent = state;
  ui.text.disabled = ui.send.disabled = state !== "online" || !currentRoom;
}

/**
 * Cyrillic and Greek letters drawn like Latin ones: "Аlice" with a Cyrillic А looks like "Alice".
 * Not all of Unicode's confusables, the ones a name is most easily forged with.
 */
const LOOKALIKES = new Map(
  (
    "\u0430a \u0410A \u0412B \u0435e \u0415E \u041AK \u043Ak \u041CM \u041DH \u043Eo \u041EO \u0440p \u0420P \u0441c " +
    "\u0421C \u0422T \u0443y \u0423Y \u0445x \u0425X \u0456i \u0406I \u0458j \u0408J \u0455s \u0405S \u0501d \u051Bq " +
    "\u051Dw \u0391A \u0392B \u0395E \u0396Z \u0397H \u0399I \u039AK \u039CM \u039DN \u039FO \u03A1P \u03A4T \u03A5Y " +
    "\u03A7X \u03BFo \u03BDv \u03C1p \u03B9i \u03BAk"
  )
    .split(" ")
    .map((pair) => [pair[0]!, pair[1]!] as const),
);

/** What a name looks like: compatibility forms folded, look-alike letters mapped to Latin, any case. */
function looks(name: string): string {
  return [...name.normalize("NFKC")]
    .map((c) => LOOKALIKES.get(c) ?? c)
    .join("")
    .toLowerCase();
}

/** Ids seen under each look of a display name in the current room (members and authors). */
const idsByName = new Map<string, Set<string>>();

function seen(user: User): void {
  const key = looks(user.name);
  const ids = idsByName.get(key) ?? new Set<string>();
  ids.add(user.id);
  idsByName.set(key, ids);
}

/**
 * A user's name, and beside it their stable id when someone else in the room goes by the same
 * name, or one that looks the same: a display name proves nothing, the id (the token's `sub`) is
 * who it is.
 */
function nameOf<T extends HTMLElement>(element: T, user: User): T {
  element.textContent = user.name;
  if ((idsByName.get(looks(user.name))?.size ?? 0) > 1) {
    element.append(Object.assign(document.createElement("span"), { className: "uid", textContent: ` (${user.id})` }));
  }
  return element;
}

function renderMembers(): void {
  for (const user of members.values()) seen(user);
  ui.members.replaceChildren(
    ...[...members.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)).map((user) => nameOf(document.createElement("li"), user)),
  );
}

function append(node: HTMLElement): void {
  const atBottom = ui.messages.scrollTop + ui.messages.clientHeight >= ui.messages.scrollHeight - 8;
  ui.messages.append(node);
  if (atBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function renderMessage(message: ChatMessage): void {
  const li = document.createElement("li");
  li.dataset.id = message.id;
  const when = Object.assign(document.createElement("span"), {
    className: "when",
    textContent: new Date(message.ts).toLocaleTimeString(),
  });
  seen(message.user);
  const who = nameOf(Object.assign(document.createElement("span"), { className: "who" }), message.user);
  li.append(when, who, document.createTextNode(message.text));
  append(li);
}

function notice(text: string): void {
  append(Object.assign(document.createElement("li"), { className: "notice", textContent: text }));
}

function renderNotification(notification: Notification): void {
  const text = `${notification.type}: ${JSON.stringify(notification.data)}`.slice(0, 500);
  append(Object.assign(document.createElement("li"), { className: "notice", textContent: text }));
}

async function join(room: string): Promise<void> {
  if (!client) return;
  if (currentRoom && currentRoom !== room) {
    const previous = currentRoom;
    currentRoom = "";
    await client.leave(previous).catch(() => undefined);
  }
  if (currentRoom !== room) {
    ui.messages.replaceChildren();
    idsByName.clear();
  }
  currentRoom = room;
  try {
    // The client renders what the join delivers through its "message" events, in order.
    await client.join(room);
    showError(undefined);
    localStorage.setItem("chat.room", room);
    ui.title.textContent = `#${room}`;
    setStatus("online");
  } catch (err) {
    currentRoom = "";
    showError(`Could not join ${room}: ${(err as Error).message}`);
  }
}

function connect(name: string): ChatClient {
  // WebSocket first: it keeps a client on one pod without sticky sessions. Long-polling remains
  // as a fallback for networks that block WebSocket. The client re-joins every room with the last
  // id it saw after any reconnect, so nothing said meanwhile is missed, and nothing twice.
  // With a token (see above), the name comes from the token.
  const next = new ChatClient(location.origin, { auth: token ? { token } : { name } });
  next.on("status", (online) => setStatus(online ? "online" : "reconnecting"));
  next.on("slow_consumer", () => notice("This page fell behind the room (a slow link?): reconnecting and catching up."));
  next.on("joined", ({ room, members: list }) => {
    if (room !== currentRoom) return;
    members.clear();
    for (const user of list) members.set(user.id, user);
    renderMembers();
  });
  next.socket.on("connect_error", (err: Error & { data?: { code?: string } }) => {
    setStatus("offline");
    showError(`Cannot connect: ${err.message}`);
    if (err.data?.code === "unauthorized") next.close();
  });
  next.on("message", (message: ChatMessage) => {
    if (message.room === currentRoom) renderMessage(message);
  });
  next.on("notification", (notification) => {
    if (notification.room === undefined || notification.room === currentRoom) renderNotification(notification);
  });
  next.on("gap", ({ room }) => {
    if (room === currentRoom) notice("Some older messages are no longer available.");
  });
  next.on("presence", (event) => {
    if (event.room !== currentRoom) return;
    if (event.action === "join") members.set(event.user.id, event.user);
    else members.delete(event.user.id);
    renderMembers();
    notice(`${event.user.name} ${event.action === "join" ? "joined" : "left"}`);
  });
  return next;
}

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  localStorage.setItem("chat.name", name);
  if (!client || name !== currentName) {
    client?.close();
    currentName = name;
    currentRoom = "";
    client = connect(name);
    client.socket.once("connect", () => void join(room));
  } else {
    void join(room);
  }
});

ui.sendForm.addEventListener("submit", (event) => {
  event.preventDefault();
  // send() shows every failure itself (try/catch below): nothing is left to reject.
  void send();
});

async function send() {
  const text = ui.text.value;
  if (!client || !currentRoom || !text) return;
  ui.send.disabled = true;
  try {
    await client.send(currentRoom, text);
    ui.text.value = "";
    showError(undefined);
  } catch (err) {
    showError(`Not sent: ${err instanceof ChatError ? err.message : String(err)}`);
  } finally {
    ui.send.disabled = ui.text.disabled;
  }
}
