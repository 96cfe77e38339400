// The load generator: many raw WebSocket clients in one process, speaking Engine.IO v4 /
// Socket.IO v4 text framing by hand (no socket.io-client), driven by bench.mjs over IPC.
//
// Frames: "0{open}" from the server, then "40{auth}" → "40{sid}" (or "44{error}");
// ping "2" → pong "3"; event "42[...]"; emit with ack id "42<id>[...]" → ack "43<id>[...]".
//
// Bench messages carry "BENCH:<run>:<n>:<sendTime>" in their text (chat, baseline) or data
// (notifier), so a delivery is counted and timed with a few indexOf calls on the raw bytes; the
// reliability runs parse every frame (they need id and prev).
import { request as httpRequest, Agent } from "node:http";
import WebSocket from "ws";
import { SignJWT } from "jose";
// The client's own ordering logic (services/client/src/sequencer.ts; `npm run build` first), so the
// reliability figures measure what @chat/client does, not a copy of it.
import { RoomSequencer } from "@chat/client/sequencer";
import { LOG_START } from "@chat/shared/log-id";

const now = () => performance.timeOrigin + performance.now();
// A catch-up that throws (it should not: acks resolve, even on a timeout) shows up in the bench log.
const rejoinFailed = (err) => console.error(`loadgen: catch-up failed: ${err?.stack ?? err}`);
const MARK = Buffer.from("BENCH:");
const EVENT_PREFIX = Buffer.from('42["');

// ---------------------------------------------------------------------------------------------
// Latency histogram: 0.05 ms bins up to 60 s.
const BIN = 0.05;
class Histogram {
  constructor() {
    this.bins = new Uint32Array(Math.ceil(60_000 / BIN) + 1);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }
  add(ms) {
    const v = ms < 0 ? 0 : ms;
    this.bins[Math.min(this.bins.length - 1, Math.floor(v / BIN))]++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }
  quantile(q) {
    if (this.count === 0) return null;
    const target = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.bins.length; i++) {
      seen += this.bins[i];
      if (seen >= target) return +((i + 1) * BIN).toFixed(2);
    }
    return this.max;
  }
  summary() {
    return {
      count: this.count,
      mean: this.count ? +(this.sum / this.count).toFixed(2) : null,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: +this.max.toFixed(2),
    };
  }
}

// The run being measured (at most one at a time).
let run = null;

function onBenchDelivery(buf, at) {
  const mark = buf.indexOf(MARK);
  if (mark < 0 || !run) return;
  let i = mark + MARK.length;
  let runId = 0;
  let c;
  while ((c = buf[i++]) !== 0x3a) runId = runId * 10 + (c - 48);
  if (runId !== run.id) {
    run.stale++;
    return;
  }
  let n = 0;
  while ((c = buf[i++]) !== 0x3a) n = n * 10 + (c - 48);
  let end = i;
  while (buf[end] !== 0x22 && end < buf.length) end++;
  const sent = Number(buf.latin1Slice(i, end));
  run.hist.add(at - sent);
  run.delivered++;
  if (n < run.perMessage.length) run.perMessage[n]++;
  run.lastDelivery = at;
}

// ---------------------------------------------------------------------------------------------
class Client {
  constructor(url, name, { reconnect = false, full = false, token, localAddress } = {}) {
    this.url = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.name = name;
    this.auth = JSON.stringify(token ? { token } : { name });
    this.reconnect = reconnect;
    this.full = full;
    this.nextAck = 0;
    this.pending = new Map();
    this.connected = false;
    this.closedByUs = false;
    this.attempt = 0;
    /** room -> its RoomSequencer (reliability runs). */
    this.rooms = new Map();
    this.received = new Set();
    this.onConnect = null;
    this.localAddress = localAddress;
  }

  open() {
    const attempt = new Promise((resolve, reject) => {
      this.onConnect = { resolve, reject };
      const ws = new WebSocket(this.url, { perMessageDeflate: false, skipUTF8Validation: true, localAddress: this.localAddress, handshakeTimeout: 30_000 });
      this.ws = ws;
      ws.on("message", (data) => this.onFrame(data));
      ws.on("error", () => undefined);
      ws.on("close", () => this.onClose(ws));
    });
    // A server that takes the upgrade but never answers the Socket.IO CONNECT must not hang the bench.
    const ws = this.ws;
    const timer = setTimeout(() => this.onConnect && ws === this.ws && ws.terminate(), 30_000);
    return attempt.finally(() => clearTimeout(timer));
  }

  send(frame) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(frame);
  }

  emit(event, payload, timeoutMs = 0) {
    return new Promise((resolve) => {
      if (!this.connected) return resolve({ ok: false, error: { code: "disconnected" } });
      const id = this.nextAck++;
      let timer;
      if (timeoutMs) timer = setTimeout(() => this.pending.delete(id) && resolve({ ok: false, error: { code: "timeout" } }), timeoutMs);
      this.pending.set(id, (ack) => {
        if (timer) clearTimeout(timer);
        resolve(ack);
      });
      this.send(`42${id}${JSON.stringify([event, payload])}`);
    });
  }

  onFrame(buf) {
    const type = buf[0];
    if (type === 0x32) return this.send("3"); // ping → pong
    if (type === 0x30) return this.send(`40${this.auth}`); // open
    if (type !== 0x34) return; // only "message" frames from here on
    const sio = buf[1];
    if (sio === 0x32) {
      // event
      if (!this.full && buf.indexOf(EVENT_PREFIX) === 0) return onBenchDelivery(buf, now());
      return this.onEvent(JSON.parse(buf.toString("utf8", 2)));
    }
    if (sio === 0x33) {
      // ack: 43<id>[payload]
      let i = 2;
      let id = 0;
      while (buf[i] >= 48 && buf[i] <= 57) id = id * 10 + (buf[i++] - 48);
      const cb = this.pending.get(id);
      if (!cb) return;
      this.pending.delete(id);
      cb(JSON.parse(buf.toString("utf8", i))[0]);
      return;
    }
    if (sio === 0x30) {
      this.connected = true;
      this.attempt = 0;
      const cb = this.onConnect;
      this.onConnect = null;
      cb?.resolve(this);
      if (this.reconnect) this.afterReconnect?.();
      return;
    }
    if (sio === 0x34) {
      const cb = this.onConnect;
      this.onConnect = null;
      cb?.reject(new Error(`connect_error ${buf.toString("utf8", 2)}`));
      this.ws.close();
    }
  }

  onEvent([event, payload]) {
    const at = now();
    if (event === "message" || event === "notification") {
      const text = event === "message" ? payload.text : payload.data;
      if (typeof text === "string" && text.startsWith("BENCH:")) onBenchDelivery(Buffer.from(`"${text}"`), at);
      if (this.reconnect) this.onEntry(payload);
    } else if (event === "resync") {
      rel?.resyncs.push(at);
      this.rejoin("resync").catch(rejoinFailed);
    }
  }

  /**
   * Reliability: the room's sequencer drops duplicates, holds live entries while a catch-up is in
   * flight, and tells of a gap, which starts a catch-up.
   */
  onEntry(entry) {
    const verdict = this.rooms.get(entry.room)?.accept(entry);
    if (verdict === "deliver") this.received.add(entry.id);
    else if (verdict === "duplicate") {
      if (rel) rel.duplicates++;
    } else if (verdict === "gap") {
      if (rel) rel.gaps++;
      this.rejoin("gap").catch(rejoinFailed);
    }
  }

  /** Entries a catch-up read: the new ones are received, the rest were duplicates. */
  onReplay(seq, entries) {
    const fresh = seq.replay(entries);
    if (rel) rel.duplicates += entries.length - fresh.length;
    for (const entry of fresh) this.received.add(entry.id);
  }

  async rejoin(reason) {
    if (this.catchingUp) return void (this.again = true);
    if (!this.connected) return;
    this.catchingUp = true;
    let caughtUp = false;
    try {
      for (;;) {
        this.again = false;
        let ok = true;
        for (const [room, seq] of this.rooms) {
          const since = seq.beginCatchUp();
          const ack = await this.emit("join", since ? { room, since } : { room }, 10_000);
          if (!ack.ok) {
            ok = false;
            if (rel) rel.joinErrors[ack.error?.code] = (rel.joinErrors[ack.error?.code] ?? 0) + 1;
            continue;
          }
          this.onReplay(
            seq,
            (ack.messages ?? []).map((entry) => ({ ...entry, room })),
          );
        }
        if (ok && !this.again) break;
        if (!this.connected) return;
        if (!ok) await new Promise((r) => setTimeout(r, 200));
      }
      caughtUp = true;
      if (rel) {
        rel.rejoins.push({ at: now(), reason });
        if (this.disconnectedAt) {
          rel.reconnects.push(now() - this.disconnectedAt);
          this.disconnectedAt = 0;
        }
      }
    } finally {
      this.catchingUp = false;
      // As @chat/client does: what arrived meanwhile is merged once caught up, and dropped when
      // the connection went (the catch-up after the reconnect reads it again).
      for (const seq of this.rooms.values()) {
        if (!caughtUp) seq.abandonCatchUp();
        else for (const entry of seq.finishCatchUp()) this.received.add(entry.id);
      }
    }
  }

  afterReconnect() {
    if (this.disconnectedAt) this.rejoin("reconnect").catch(rejoinFailed);
  }

  onClose(ws) {
    if (ws !== this.ws) return;
    const wasConnected = this.connected;
    this.connected = false;
    for (const cb of this.pending.values()) cb({ ok: false, error: { code: "disconnected" } });
    this.pending.clear();
    if (this.onConnect) {
      this.onConnect.reject(new Error("closed before connect"));
      this.onConnect = null;
    }
    if (!this.reconnect || this.closedByUs) return;
    if (wasConnected) {
      this.disconnectedAt = now();
      rel?.disconnects.push(this.disconnectedAt);
    }
    // socket.io-client-like back-off: 100 ms doubling to 1 s, ±50 % jitter.
    const base = Math.min(100 * 2 ** this.attempt++, 1000);
    setTimeout(() => void this.open().catch(() => undefined), base * (0.5 + Math.random()));
  }

  close() {
    this.closedByUs = true;
    this.ws?.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
const groups = new Map();

/** An HS256 token for `name` (AUTH_MODE=jwt runs), signed with jose like a real issuer would. */
function signToken(secret, name) {
  return new SignJWT({ name }).setProtectedHeader({ alg: "HS256" }).setSubject(name).setIssuedAt().setExpirationTime("2h").sign(secret);
}

/** `localAddresses` (127.0.0.x): clients spread over them, each source address having its own ephemeral ports. */
async function connectGroup({ group, urls, count, prefix, reconnect = false, full = false, concurrency = 200, jwtSecret, localAddresses }) {
  const started = now();
  const clients = [];
  const key = jwtSecret && new TextEncoder().encode(jwtSecret);
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${i}`;
    const token = key ? await signToken(key, name) : undefined;
    clients.push(new Client(urls[i % urls.length], name, { reconnect, full, token, localAddress: localAddresses?.[i % localAddresses.length] }));
  }
  const signMs = Math.round(now() - started);
  let next = 0;
  const failures = [];
  async function worker() {
    while (next < clients.length) {
      const client = clients[next++];
      for (let attempt = 0; ; attempt++) {
        try {
          await client.open();
          break;
        } catch (err) {
          if (attempt >= 3) {
            failures.push(err.message);
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  groups.set(group, clients);
  return { connected: clients.filter((c) => c.connected).length, failures: failures.slice(0, 3), ms: Math.round(now() - started - signMs), signMs };
}

/**
 * Joins every client of the group to `room`; or, with `rooms` ({ prefix, size, count }), client i
 * (for i < size × count) to room `${prefix}${floor(i / size)}` and the others to nothing.
 */
async function joinGroup({ group, room, rooms, concurrency = 50 }) {
  const started = now();
  const all = groups.get(group);
  const clients = rooms ? all.slice(0, rooms.size * rooms.count) : all;
  let next = 0;
  let failed = 0;
  async function worker() {
    while (next < clients.length) {
      const i = next++;
      const client = clients[i];
      const room = rooms ? `${rooms.prefix}${Math.floor(i / rooms.size)}` : roomArg;
      const ack = await client.emit("join", { room }, 30_000);
      if (!ack.ok) failed++;
      else {
        // As @chat/client's join: the room's history is not counted, but the sequencer starts after it.
        const seq = new RoomSequencer();
        if (ack.complete && !ack.messages?.length) seq.startAt(LOG_START);
        seq.replay((ack.messages ?? []).map((entry) => ({ ...entry, room })));
        client.rooms.set(room, seq);
      }
    }
  }
  const roomArg = room;
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { joined: clients.length - failed, failed, ms: Math.round(now() - started) };
}

function closeGroup({ group }) {
  for (const client of groups.get(group) ?? []) client.close();
  groups.delete(group);
  return { closed: true };
}

// ---------------------------------------------------------------------------------------------
// Fixed-rate runs: chat/baseline `message` events, or notifier HTTP events.
let runIds = 0;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function postEvent({ url, key, keys, room }, body, n = 0) {
  if (keys) key = keys[n % keys.length];
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = httpRequest(
      `${url}/v1/rooms/${room}/events`,
      { method: "POST", agent, headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": Buffer.byteLength(data) } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      },
    );
    req.on("error", () => resolve(0));
    req.end(data);
  });
}

/**
 * `rooms` ({ prefix, size, count }, as joined by joinGroup): message n goes to room n % count, sent
 * by one of that room's members in turn, and is expected by its `size` members.
 */
async function fixedRate({ group, room, rooms, rate, durationMs, senders = 50, settleMs = 3000, members, notifier }) {
  const clients = groups.get(group) ?? [];
  const expectedPer = rooms ? rooms.size : (members ?? clients.length);
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  run = { id: ++runIds, hist: new Histogram(), delivered: 0, stale: 0, perMessage: new Uint32Array(total), lastDelivery: 0 };
  const ackHist = new Histogram();
  const ackErrors = {};
  let sent = 0;
  let acked = 0;
  const cpu0 = process.cpuUsage();
  const started = now();
  const sendOne = (n) => {
    const text = `BENCH:${run.id}:${n}:${now().toFixed(3)}`;
    const t0 = now();
    const done = (okay, code) => {
      if (okay) {
        acked++;
        ackHist.add(now() - t0);
      } else ackErrors[code] = (ackErrors[code] ?? 0) + 1;
    };
    if (notifier)
      postEvent({ ...notifier, room }, { type: "bench", data: text }, n).then(
        (s) => done(s === 202, `http_${s}`),
        (err) => done(false, err.code ?? "post_failed"),
      );
    else if (rooms) {
      const r = n % rooms.count;
      const sender = clients[r * rooms.size + (Math.floor(n / rooms.count) % rooms.size)];
      sender.emit("message", { room: `${rooms.prefix}${r}`, text }).then((a) => done(a.ok, a.error?.code));
    } else clients[n % Math.min(senders, clients.length)].emit("message", { room, text }).then((a) => done(a.ok, a.error?.code));
  };
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = now() - started;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (sent < due) sendOne(sent++);
      if (sent >= total) return resolve();
      setTimeout(tick, Math.max(1, Math.min(10, (sent * 1000) / rate - elapsed)));
    };
    tick();
  });
  const sendEnd = now();
  const expected = total * expectedPer;
  // Settle: until every delivery arrived, or settleMs after the last send.
  while (now() - sendEnd < settleMs && (run.delivered < expected || acked + Object.values(ackErrors).reduce((a, b) => a + b, 0) < total)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const end = now();
  const r = run;
  run = null;
  let complete = 0;
  for (let i = 0; i < total; i++) if (r.perMessage[i] >= expectedPer) complete++;
  const cpu = process.cpuUsage(cpu0);
  return {
    rate,
    durationMs,
    sent: total,
    acked,
    ackErrors,
    members: expectedPer,
    expected,
    delivered: r.delivered,
    deliveryRatio: expected ? r.delivered / expected : 0,
    messagesFullyDelivered: complete,
    stale: r.stale,
    latency: r.hist.summary(),
    ack: ackHist.summary(),
    achievedRate: +((total * 1000) / (sendEnd - started)).toFixed(1),
    wallMs: Math.round(end - started),
    lastDeliveryMs: r.lastDelivery ? Math.round(r.lastDelivery - started) : null,
    loadgenCpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(3),
  };
}

/** Closed loop: `concurrency` requests in flight for durationMs; counts 202s. */
async function notifierBlast({ url, key, keys, room, durationMs, concurrency = 32 }) {
  const started = now();
  const statuses = {};
  let accepted = 0;
  async function worker(w) {
    let i = 0;
    while (now() - started < durationMs) {
      const s = await postEvent({ url, key, keys, room }, { type: "blast", data: { w, i } }, w + concurrency * i++);
      statuses[s] = (statuses[s] ?? 0) + 1;
      if (s === 202) accepted++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const secs = (now() - started) / 1000;
  return { accepted, statuses, seconds: +secs.toFixed(2), acceptedPerSecond: Math.round(accepted / secs), concurrency };
}

// ---------------------------------------------------------------------------------------------
// Reliability: continuous traffic with retries, clients that reconnect, re-join and dedupe.
let rel = null;

function relStart({ group, room, rate, senders = 20 }) {
  const clients = groups.get(group);
  rel = {
    room,
    acked: new Set(),
    sent: 0,
    retries: 0,
    unavailable: 0,
    gaveUp: 0,
    inFlight: 0,
    duplicates: 0,
    gaps: 0,
    disconnects: [],
    reconnects: [],
    rejoins: [],
    resyncs: [],
    firstOkAfter: [],
    joinErrors: {},
    stopping: false,
  };
  const r = rel;
  let n = 0;
  const started = now();
  const sendWithRetry = async (client, clientMsgId, text) => {
    r.inFlight++;
    const deadline = now() + 30_000;
    for (let attempt = 0; ; attempt++) {
      const ack = client.connected ? await client.emit("message", { room, text, clientMsgId }, 5000) : { ok: false, error: { code: "disconnected" } };
      if (ack.ok) {
        r.acked.add(ack.id);
        r.lastOk = now();
        break;
      }
      if (ack.error?.code === "unavailable") r.unavailable++;
      if (now() > deadline) {
        r.gaveUp++;
        break;
      }
      r.retries++;
      await new Promise((res) => setTimeout(res, 200));
    }
    r.inFlight--;
  };
  const tick = () => {
    if (r.stopping) return;
    const due = Math.floor(((now() - started) * rate) / 1000);
    while (n < due) {
      const i = n++;
      const client = clients[i % Math.min(senders, clients.length)];
      r.sent++;
      void sendWithRetry(client, `bench-${i}-${Math.random().toString(36).slice(2, 8)}`, `rel ${i}`);
    }
    setTimeout(tick, 10);
  };
  tick();
  return { started: true };
}

function relStatus({ group }) {
  const clients = groups.get(group);
  return {
    connected: clients.filter((c) => c.connected).length,
    catchingUp: clients.filter((c) => c.catchingUp || c.disconnectedAt).length,
    total: clients.length,
    disconnects: rel.disconnects.length,
    resyncs: rel.resyncs.length,
    lastOk: rel.lastOk,
    now: now(),
  };
}

async function relStop({ group, settleMs = 3000 }) {
  const r = rel;
  r.stopping = true;
  const clients = groups.get(group);
  const t0 = now();
  while (now() - t0 < 35_000 && (r.inFlight > 0 || clients.some((c) => c.catchingUp || !c.connected))) {
    await new Promise((res) => setTimeout(res, 50));
  }
  await new Promise((res) => setTimeout(res, settleMs));
  let lostPairs = 0;
  const missing = new Set();
  const lostPerClient = [];
  for (const client of clients) {
    let lost = 0;
    for (const id of r.acked) {
      if (!client.received.has(id)) {
        lost++;
        missing.add(id);
      }
    }
    lostPairs += lost;
    if (lost) lostPerClient.push(lost);
  }
  const reconnects = [...r.reconnects].sort((a, b) => a - b);
  const q = (p) => (reconnects.length ? Math.round(reconnects[Math.min(reconnects.length - 1, Math.ceil(p * reconnects.length) - 1)]) : null);
  rel = null;
  return {
    sent: r.sent,
    acked: r.acked.size,
    retries: r.retries,
    unavailableAcks: r.unavailable,
    gaveUp: r.gaveUp,
    duplicatesDropped: r.duplicates,
    gapsDetected: r.gaps,
    rejoinErrors: r.joinErrors,
    clients: clients.length,
    connectedAtEnd: clients.filter((c) => c.connected).length,
    disconnects: r.disconnects.length,
    firstDisconnect: r.disconnects.length ? Math.min(...r.disconnects) : null,
    reconnected: reconnects.length,
    reconnectMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
    lastRejoinAt: r.rejoins.length ? Math.max(...r.rejoins.map((x) => x.at)) : null,
    resyncs: r.resyncs.length,
    firstResync: r.resyncs.length ? Math.min(...r.resyncs) : null,
    lastResyncRejoin: r.rejoins.filter((x) => x.reason === "resync").reduce((m, x) => Math.max(m, x.at), 0) || null,
    lostPairs,
    lostMessages: missing.size,
    clientsMissingSomething: lostPerClient.length,
  };
}

// ---------------------------------------------------------------------------------------------
const commands = { connectGroup, joinGroup, closeGroup, fixedRate, notifierBlast, relStart, relStatus, relStop };
process.on("message", ({ id, cmd, args }) => {
  // Every failure is answered to the bench; only a send() that fails (the bench is gone) ends up in the catch.
  (async () => {
    try {
      const result = await commands[cmd](args);
      process.send({ id, result });
    } catch (err) {
      process.send({ id, error: err.stack ?? String(err) });
    }
  })().catch((err) => {
    console.error(`loadgen: cannot answer the bench: ${err?.stack ?? err}`);
    process.exit(1);
  });
});
process.send({ ready: true });
// Exit cleanly (so `--cpu-prof` can write its profile) when told to, or when the bench is gone.
process.on("SIGINT", () => process.exit(0));
process.on("disconnect", () => process.exit(0));
