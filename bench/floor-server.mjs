// The raw floor (issue 22): what any Node chat could do on this topology. `ws` with just enough
// Engine.IO v4 / Socket.IO v4 framing that socket.io-client connects and receives events (open,
// ping/pong, CONNECT of the default namespace, EVENT with acks), raw Redis pub/sub (one channel per
// room, subscribed while a local member is in it), and one pre-encoded WebSocket frame per message:
// the publishing process encodes the event once, every process frames it once, and each recipient
// gets the same bytes written to its TCP socket. No log, no presence, no validation, no metrics,
// no long-polling, no upgrades. It is a reference to measure against, not something to deploy.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import WebSocket, { Sender, WebSocketServer } from "ws";
import { Redis } from "ioredis";

const pub = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const sub = pub.duplicate();
const PING_MS = 25_000;
const OPEN = JSON.stringify({ upgrades: [], pingInterval: PING_MS, pingTimeout: 20_000, maxPayload: 1_000_000 });
/** room -> the local members' sockets. */
const rooms = new Map();
let seq = 0;

// ws's own framing (its static Sender.frame), done once per message for every recipient.
const frameOf = (text) => Buffer.concat(Sender.frame(Buffer.from(text), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }));

// The messages of one Redis read (ioredis emits them in one synchronous loop) are flushed together
// in a microtask: each member of a room gets one write of all its frames (one syscall, not one per message).
let pending = null;
sub.on("messageBuffer", (channel, payload) => {
  const room = channel.toString("latin1", 6);
  if (!rooms.has(room)) return;
  if (!pending) {
    pending = new Map();
    queueMicrotask(flush);
  }
  const frames = pending.get(room);
  if (frames) frames.push(frameOf(payload));
  else pending.set(room, [frameOf(payload)]);
});
function flush() {
  const batch = pending;
  pending = null;
  for (const [room, frames] of batch) {
    const bytes = frames.length === 1 ? frames[0] : Buffer.concat(frames);
    for (const ws of rooms.get(room) ?? []) {
      // The TCP socket directly, as the chat's fast path does (ws has nothing queued: no deflate).
      if (ws.readyState === WebSocket.OPEN && ws._socket) ws._socket.write(bytes);
    }
  }
}

function onEvent(ws, state, ackId, [event, payload]) {
  const ack = (body) => ackId !== "" && ws.send(`43${ackId}${JSON.stringify([body])}`);
  if (event === "join" && typeof payload?.room === "string") {
    let members = rooms.get(payload.room);
    if (!members) {
      rooms.set(payload.room, (members = new Set()));
      void sub.subscribe(`floor:${payload.room}`);
    }
    members.add(ws);
    state.rooms.add(payload.room);
    return ack({ ok: true, room: payload.room });
  }
  if (event === "message" && typeof payload?.room === "string") {
    const ts = Date.now();
    const id = `${ts}-${seq++}`;
    const body = `42${JSON.stringify(["message", { id, room: payload.room, text: payload.text, user: state.user, ts }])}`;
    void pub.publish(`floor:${payload.room}`, body);
    return ack({ ok: true, id, ts });
  }
  ack({ ok: false, error: { code: "bad_request", message: "the floor server knows join and message only" } });
}

const httpServer = createServer((req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
httpServer.on("upgrade", (req, socket, head) => {
  if (!req.url.startsWith("/socket.io/") || !req.url.includes("transport=websocket")) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    const state = { user: null, rooms: new Set() };
    ws.send(`0${OPEN.replace("{", `{"sid":"${randomBytes(15).toString("base64url")}",`)}`);
    const ping = setInterval(() => ws.send("2"), PING_MS);
    ws.on("message", (data) => {
      const text = Buffer.isBuffer(data) ? data.toString() : "";
      if (text[0] !== "4") return; // "3" (pong) and anything else
      if (text[1] === "0") {
        let auth = {};
        try {
          auth = text.length > 2 ? JSON.parse(text.slice(2)) : {};
        } catch {
          /* malformed: anonymous */
        }
        const name = typeof auth.name === "string" && auth.name ? auth.name.slice(0, 32) : "anonymous";
        state.user = { id: name, name };
        return ws.send(`40{"sid":"${randomBytes(15).toString("base64url")}"}`);
      }
      if (text[1] !== "2") return;
      let i = 2;
      while (text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
      try {
        onEvent(ws, state, text.slice(2, i), JSON.parse(text.slice(i)));
      } catch {
        /* malformed: dropped */
      }
    });
    ws.on("error", () => undefined);
    ws.on("close", () => {
      clearInterval(ping);
      for (const room of state.rooms) {
        const members = rooms.get(room);
        members?.delete(ws);
        if (members?.size === 0) {
          rooms.delete(room);
          void sub.unsubscribe(`floor:${room}`);
        }
      }
    });
  });
});
process.once("SIGTERM", () => process.exit(0)); // so that --cpu-prof writes its profile
httpServer.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const { port } = httpServer.address();
  console.log(JSON.stringify({ level: 30, port, msg: `floor is up at http://127.0.0.1:${port}/` }));
});
