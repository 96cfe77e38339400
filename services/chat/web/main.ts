// The web client: pick a name, join a room, see members and messages live, send messages.
import { io, type Socket } from "socket.io-client";
import type { Ack, ChatMessage, PresenceEvent, User } from "@chat/shared";

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

let socket: Socket | undefined;
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

function renderMembers(): void {
  ui.members.replaceChildren(
    ...[...members.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((user) => Object.assign(document.createElement("li"), { textContent: user.name })),
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
  const who = Object.assign(document.createElement("span"), { className: "who", textContent: message.user.name });
  li.append(when, who, document.createTextNode(message.text));
  append(li);
}

function notice(text: string): void {
  append(Object.assign(document.createElement("li"), { className: "notice", textContent: text }));
}

async function join(room: string): Promise<void> {
  if (!socket) return;
  const ack: Ack<{ room: string; members: User[] }> = await socket.emitWithAck("join", { room });
  if (!ack.ok) return showError(`Could not join ${room}: ${ack.error.message}`);
  showError(undefined);
  if (currentRoom && currentRoom !== room) socket.emit("leave", { room: currentRoom }, () => undefined);
  if (currentRoom !== room) ui.messages.replaceChildren();
  currentRoom = room;
  localStorage.setItem("chat.room", room);
  ui.title.textContent = `#${room}`;
  members.clear();
  for (const user of ack.members) members.set(user.id, user);
  renderMembers();
  setStatus("online");
}

function connect(name: string): Socket {
  // WebSocket first: it keeps a client on one pod without sticky sessions. Long-polling remains
  // as a fallback for networks that block WebSocket.
  const next = io({ auth: { name }, transports: ["websocket", "polling"] });
  next.on("connect", () => {
    setStatus("online");
    // Rooms live on the server side of a connection: after any reconnect, join again.
    if (currentRoom) void join(currentRoom);
  });
  next.on("disconnect", () => setStatus("reconnecting"));
  next.on("connect_error", (err: Error & { data?: { code?: string } }) => {
    setStatus("offline");
    showError(`Cannot connect: ${err.message}`);
    if (err.data?.code === "unauthorized") next.disconnect();
  });
  next.on("message", (message: ChatMessage) => {
    if (message.room === currentRoom) renderMessage(message);
  });
  next.on("presence", (event: PresenceEvent) => {
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
  if (!socket || name !== currentName) {
    socket?.disconnect();
    currentName = name;
    currentRoom = "";
    socket = connect(name);
    socket.once("connect", () => void join(room));
  } else {
    void join(room);
  }
});

ui.sendForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!socket || !currentRoom || !text) return;
  const ack: Ack<{ id: string; ts: number }> = await socket.emitWithAck("message", { room: currentRoom, text });
  if (ack.ok) {
    ui.text.value = "";
    showError(undefined);
  } else {
    showError(`Not sent: ${ack.error.message}`);
  }
});
