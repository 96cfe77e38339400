// The reconnect storm's clients (issue 22), a child process driven by bench/storm.mjs over the same
// IPC as bench/loadgen.mjs. Real clients, so that the storm is what users would cause: @chat/client
// for the chat (it reconnects, re-joins with `since` and catches up), plain socket.io-client for the
// baseline (it reconnects, and re-joins here on every connect; it cannot catch up).
//
// Message texts are "S:<room>:<n>:<sendTime>:<sender>": a delivery is counted per client and room by
// n, and timed from the sender's clock (the same process). The storm's latency counts only live
// messages between clients that never dropped: a message whose sender was on the killed pod waits
// for its sender's reconnect, which is the storm's recovery time, not the survivors' latency.
import { io } from "socket.io-client";
import { SignJWT } from "jose";
import { ChatClient } from "@chat/client";

const now = () => performance.timeOrigin + performance.now();
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every client: { kind, socket, chat?, room, received: Set<n>, droppedAt, backAt, lastDropAt }. */
let clients = [];
const failures = {};
const fail = (code) => (failures[code] = (failures[code] ?? 0) + 1);
let storm = null;
/** Deliveries to clients that never dropped: [receivedAt, latencyMs] pairs. */
let calm = [];
const acked = new Map(); // room -> Set<n> acked
let sending = null;

function onMessage(client, text) {
  if (typeof text !== "string" || !text.startsWith("S:")) return;
  const [, room, n, sent, sender] = text.split(":");
  if (room !== client.room) return;
  client.received.add(Number(n));
  const at = now();
  if (storm && !client.droppedAt && !clients[Number(sender)]?.droppedAt) calm.push(at, at - Number(sent));
}

function track(client) {
  const { socket } = client;
  socket.on("disconnect", () => {
    if (storm && !client.droppedAt) client.droppedAt = now();
    client.backAt = 0;
  });
  socket.on("connect_error", (err) => fail(err.data?.code ?? (err.message === "timeout" ? "connect_timeout" : "connect_error")));
}

async function connect({ kind, url, count, prefix, roomSize, jwtSecret, concurrency = 100 }) {
  const started = now();
  const key = jwtSecret && new TextEncoder().encode(jwtSecret);
  const made = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${i}`;
    const token = key
      ? await new SignJWT({ name }).setProtectedHeader({ alg: "HS256" }).setSubject(name).setIssuedAt().setExpirationTime("2h").sign(key)
      : undefined;
    made.push({ index: i, name, token, room: `storm-${Math.floor(i / roomSize)}`, received: new Set(), droppedAt: 0, backAt: 0 });
  }
  let next = 0;
  let connected = 0;
  async function worker() {
    // A deadline, so that a server that stopped answering fails the run instead of hanging it.
    while (next < made.length && now() - started < 180_000) {
      const client = made[next++];
      const auth = client.token ? { token: client.token } : { name: client.name };
      if (kind === "chat") {
        client.chat = new ChatClient(url, { auth, socket: { transports: ["websocket"] } });
        client.socket = client.chat.socket;
        client.chat.on("message", (m) => onMessage(client, m.text));
        // "status" true: connected and every room re-synced (re-joined and caught up).
        client.chat.on("status", (online) => online && storm && client.droppedAt && !client.backAt && (client.backAt = now()));
      } else {
        client.socket = io(url, { transports: ["websocket"], auth });
        client.socket.on("message", (m) => onMessage(client, m.text));
        client.socket.on("connect", () => {
          if (!client.joined) return;
          // The baseline's clients can only re-join: what was said meanwhile is gone for them.
          client.socket
            .timeout(10_000)
            .emitWithAck("join", { room: client.room })
            .then(
              (ack) => (ack.ok ? storm && client.droppedAt && !client.backAt && (client.backAt = now()) : fail("join_failed")),
              () => fail("join_timeout"),
            );
        });
      }
      track(client);
      const up = await Promise.race([
        new Promise((resolve) => (client.socket.connected ? resolve(true) : client.socket.once("connect", () => resolve(true)))),
        delay(30_000).then(() => false),
      ]);
      if (up) connected++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  clients = made.filter((c) => c.socket);
  return { connected, count, ms: Math.round(now() - started), failures: { ...failures } };
}

async function join({ concurrency = 50 }) {
  const started = now();
  let next = 0;
  let failed = 0;
  async function worker() {
    while (next < clients.length && now() - started < 180_000) {
      const client = clients[next++];
      try {
        if (client.chat) await client.chat.join(client.room);
        else {
          const ack = await client.socket.timeout(30_000).emitWithAck("join", { room: client.room });
          if (!ack.ok) throw new Error(ack.error?.code);
        }
        client.joined = true;
      } catch {
        failed++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  failed += clients.length - next; // not tried before the deadline
  return { joined: clients.length - failed, failed, ms: Math.round(now() - started) };
}

/** Steady traffic: `ratePerRoom` msg/s in every room, sent by its members in turn (each send retried by @chat/client). */
function start({ ratePerRoom }) {
  const rooms = new Map();
  for (const client of clients) (rooms.get(client.room) ?? rooms.set(client.room, []).get(client.room)).push(client);
  for (const room of rooms.keys()) acked.set(room, new Set());
  const state = { stopped: false, inFlight: 0, sent: 0, n: 0 };
  const started = now();
  const send = async (room, members, n) => {
    const client = members[n % members.length];
    const text = `S:${room}:${n}:${now().toFixed(3)}:${client.index}`;
    state.inFlight++;
    state.sent++;
    try {
      if (client.chat) await client.chat.send(room, text);
      else {
        const ack = await client.socket.timeout(10_000).emitWithAck("message", { room, text });
        if (!ack.ok) throw Object.assign(new Error(), { code: ack.error?.code });
      }
      acked.get(room).add(n);
    } catch (err) {
      fail(`send_${err.code ?? (/timed out/.test(err.message) ? "timeout" : err.message || "error")}`);
    } finally {
      state.inFlight--;
    }
  };
  const tick = () => {
    if (state.stopped) return;
    const due = Math.floor(((now() - started) * ratePerRoom) / 1000);
    while (state.n < due) {
      const n = state.n++;
      for (const [room, members] of rooms) void send(room, members, n);
    }
    setTimeout(tick, 20);
  };
  tick();
  sending = state;
  return { rooms: rooms.size };
}

function beginStorm() {
  storm = { at: now() };
  calm = [];
  return { at: storm.at };
}

function status() {
  const dropped = clients.filter((c) => c.droppedAt);
  return {
    dropped: dropped.length,
    back: dropped.filter((c) => c.backAt).length,
    connected: clients.filter((c) => c.socket.connected).length,
    total: clients.length,
    failures: { ...failures },
  };
}

const quantile = (sorted, q) => (sorted.length ? +sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)].toFixed(2) : null);

/** Stops the traffic, waits for the sends in flight and the deliveries, and counts what each client lacks. */
async function stop({ settleMs = 2000 }) {
  sending.stopped = true;
  const t0 = now();
  while (sending.inFlight > 0 && now() - t0 < 30_000) await delay(50);
  await delay(settleMs);
  const dropped = clients.filter((c) => c.droppedAt);
  const backTimes = dropped.filter((c) => c.backAt).map((c) => c.backAt - storm.at);
  const end = backTimes.length ? storm.at + Math.max(...backTimes) : now();
  const lat = [];
  for (let i = 0; i < calm.length; i += 2) if (calm[i] <= end) lat.push(calm[i + 1]);
  lat.sort((a, b) => a - b);
  let lostPairs = 0;
  let lostPairsDropped = 0;
  const missing = new Set();
  for (const client of clients) {
    for (const n of acked.get(client.room) ?? []) {
      if (client.received.has(n)) continue;
      lostPairs++;
      if (client.droppedAt) lostPairsDropped++;
      missing.add(`${client.room}:${n}`);
    }
  }
  const ackedCount = [...acked.values()].reduce((a, s) => a + s.size, 0);
  return {
    clients: clients.length,
    dropped: dropped.length,
    back: backTimes.length,
    allBackMs: backTimes.length ? Math.round(Math.max(...backTimes)) : null,
    backMs: {
      p50: quantile(
        [...backTimes].sort((a, b) => a - b),
        0.5,
      ),
      p99: quantile(
        [...backTimes].sort((a, b) => a - b),
        0.99,
      ),
    },
    calmLatency: { count: lat.length, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: quantile(lat, 1) },
    sent: sending.sent,
    acked: ackedCount,
    lostMessages: missing.size,
    lostPairs,
    lostPairsDropped,
    failures: { ...failures },
  };
}

function close() {
  for (const client of clients) (client.chat ?? client.socket).close();
  clients = [];
  return { closed: true };
}

const commands = { connect, join, start, beginStorm, status, stop, close };
process.on("message", ({ id, cmd, args }) => {
  (async () => {
    try {
      process.send({ id, result: await commands[cmd](args) });
    } catch (err) {
      process.send({ id, error: err.stack ?? String(err) });
    }
  })().catch(() => process.exit(1));
});
process.send({ ready: true });
process.on("SIGINT", () => process.exit(0));
process.on("disconnect", () => process.exit(0));
