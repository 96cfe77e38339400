import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Server, type ServerOptions } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { createLogger } from "@chat/shared";
import { connectRawClient, waitFor, type RawClient } from "@chat/testkit";
import { coalesceWrites } from "../src/coalesce.js";
import { fastPaths, handleWriter } from "../src/compat/index.js";
import { attachFanout, type FanoutOptions } from "../src/fanout.js";

/**
 * The fast paths (direct fan-out writes, made on the TCP handle, and coalesced writes) must put on the wire exactly what
 * Socket.IO's public path does. Each case runs one scripted sequence of emits against two servers,
 * one with the fast paths and one without, and compares what every recipient received: every
 * Engine.IO message packet (official client) and every WebSocket frame (a hand-rolled `ws` client),
 * byte for byte and in order.
 */

interface Pod {
  /** Deliveries written directly (fast pods). */
  direct: { count: number };
  io: Server;
  http: HttpServer;
  url: string;
}

const pods: Pod[] = [];
const clients: ClientSocket[] = [];
const raws: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of raws.splice(0)) r.ws.terminate();
  await Promise.all(pods.splice(0).map((p) => new Promise<void>((resolve, reject) => void p.io.close(() => resolve()).catch(reject))));
});

async function startPod(fast: boolean, options: Partial<ServerOptions> = {}, fanout: FanoutOptions = {}): Promise<Pod> {
  const http = createServer();
  const io = new Server(http, options);
  const direct = { count: 0 };
  if (fast) {
    // The direct writes are made on the TCP handle, as in a pod (compat `handleWriter`).
    const write = handleWriter();
    expect(write).toBeDefined();
    expect(attachFanout(io.of("/").adapter, { direct: true, write, observe: (_e, _p, _r, written) => void (direct.count += written), ...fanout })).toBe(true);
    coalesceWrites(io);
  }
  io.on("connection", (socket) => {
    void socket.join(["r", "r2"]);
    socket.on("join", (_payload: unknown, ack?: (x: unknown) => void) => ack?.({ ok: true }));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const pod = { direct, io, http, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
  pods.push(pod);
  return pod;
}

type Kind = "websocket" | "polling" | "upgrade" | "slow";

/** An official client that records the data of every Engine.IO message packet it receives, in order. */
async function officialClient(pod: Pod, kind: Kind): Promise<{ socket: ClientSocket; packets: unknown[] }> {
  const transports = kind === "polling" ? ["polling"] : kind === "upgrade" ? ["polling", "websocket"] : ["websocket"];
  const socket = connect(pod.url, { transports, forceNew: true, reconnection: false });
  clients.push(socket);
  const packets: unknown[] = [];
  socket.io.on("open", () => socket.io.engine.on("packet", (p: { type: string; data?: unknown }) => p.type === "message" && packets.push(p.data)));
  socket.onAny((_event: string, ...args: unknown[]) => {
    const ack = args.at(-1);
    if (typeof ack === "function") ack("ack");
  });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  if (kind === "upgrade") await waitFor(() => socket.io.engine.transport.name === "websocket", { what: "the upgrade to WebSocket" });
  return { socket, packets };
}

/** The scripted emits: text, binary, volatile, with acks, per-socket emits in between, and pauses that let writes drain. */
async function script(pod: Pod, slow?: () => { pause(): void; resume(): void }): Promise<void> {
  const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
  const sockets = [...pod.io.of("/").sockets.values()];
  for (let i = 0; i < 60; i++) {
    if (i === 10) slow?.().pause();
    if (i === 40) slow?.().resume();
    pod.io.to("r").emit("text", { i, pad: "é".repeat((i * 37) % 1500) });
    if (i % 5 === 0) pod.io.to("r").emit("bin", Buffer.from([i, 0, 255, i]), { i });
    // Broadcasts other than "one room, nobody left out" take the adapter's own walk: two rooms
    // with the same members (each recipient once), and an exception that leaves out nobody.
    if (i % 6 === 0) pod.io.to(["r", "r2"]).emit("two", i);
    if (i % 6 === 3) pod.io.to("r").except("nobody").emit("except", i);
    if (i % 3 === 0) for (const s of sockets) s.emit("own", i);
    if (i % 11 === 0)
      pod.io
        .to("r")
        .timeout(5000)
        .emit("ask", i, () => undefined);
    if (i % 7 === 0) {
      // A volatile packet is dropped by design when a transport is busy (a write or compression
      // in flight, no long-poll waiting): emit it once every transport is idle, on both pods.
      await waitFor(() => sockets.every((s) => s.conn.transport.writable), { what: "every transport to be idle" });
      pod.io.to("r").volatile.emit("vol", i);
    }
    if (i % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await settle();
}

async function run(
  fast: boolean,
  kinds: Kind[],
  options: Partial<ServerOptions> = {},
): Promise<{ official: unknown[][]; frames: (string | Buffer)[][]; direct: number }> {
  const pod = await startPod(fast, options);
  const official = await Promise.all(kinds.map((kind) => officialClient(pod, kind)));
  const raw = await connectRawClient(pod.url, "raw");
  raws.push(raw);
  const start = raw.frames.length;
  const slowIndex = kinds.indexOf("slow");
  const slow = slowIndex >= 0 ? () => (official[slowIndex]!.socket.io.engine.transport as unknown as { ws: { pause(): void; resume(): void } }).ws : undefined;
  await script(pod, slow);
  // 60 texts, 12 binaries (+ their attachments), 10 to two rooms, 10 with an exception, 20 own, 6 asks, 9 volatile.
  const expected = 60 + 12 * 2 + 10 + 10 + 20 + 6 + 9;
  await waitFor(() => official.every((c) => c.packets.length >= expected + 1) && raw.frames.length - start >= expected, {
    timeoutMs: 15_000,
    what: () => `every client to get ${expected} packets (got ${official.map((c) => c.packets.length)}, raw ${raw.frames.length - start})`,
  });
  // The first packet of each official client is Socket.IO's CONNECT, with its own session id.
  return { official: official.map((c) => c.packets.slice(1)), frames: [raw.frames.slice(start).filter((f) => f !== "2")], direct: pod.direct.count };
}

async function compare(kinds: Kind[], options: Partial<ServerOptions> = {}): Promise<void> {
  const fast = await run(true, kinds, options);
  const plain = await run(false, kinds, options);
  // The fast pod did take its fast path (else this compares the public path with itself), but
  // not with compression, where Engine.IO's frames are compressed and a shared one is not.
  if (options.perMessageDeflate) expect(fast.direct).toBe(0);
  else expect(fast.direct).toBeGreaterThan(0);
  expect(fast.official).toEqual(plain.official);
  expect(fast.frames).toEqual(plain.frames);
  // And none of it is empty or reordered: the texts arrive in the order they were emitted.
  for (const packets of fast.official) {
    const texts = packets
      .filter((p): p is string => typeof p === "string" && p.startsWith('2["text"'))
      .map((p) => (JSON.parse(p.slice(1)) as [string, { i: number }])[1].i);
    expect(texts).toEqual(Array.from({ length: 60 }, (_, i) => i));
  }
}

describe("the fast paths against the public path, byte for byte", () => {
  it("pass their start-up checks on the pinned library versions", () => {
    expect(fastPaths("auto", createLogger({ service: "test", pod: "test", level: "silent" }))).toEqual({
      direct_write: true,
      handle_write: true,
      coalesce: true,
      release_requests: true,
    });
    expect(fastPaths("off", createLogger({ service: "test", pod: "test", level: "silent" }))).toEqual({
      direct_write: false,
      handle_write: false,
      coalesce: false,
      release_requests: false,
    });
  });

  it("give WebSocket recipients the same frames, in the same order, with text, binary, volatile and acknowledged broadcasts mixed with per-socket emits", async () => {
    await compare(["websocket", "websocket"]);
  });

  it("give the same frames with perMessageDeflate on", async () => {
    await compare(["websocket", "websocket"], { perMessageDeflate: { threshold: 0 } });
  });

  it("give long-polling and upgrading recipients the same packets, in the same order, as WebSocket ones beside them", async () => {
    await compare(["polling", "upgrade", "websocket"]);
  });

  it("give a recipient that stops reading mid-burst and reads again the same frames, in the same order", async () => {
    await compare(["slow", "websocket"]);
  });

  it("keep a broadcast started during another's walk apart from it: every recipient gets each of the two once", async () => {
    // The budget check runs for a public-path recipient in the middle of the walk; here it starts
    // a second broadcast there, as a close handler that emits would.
    let nested = false;
    const pod: Pod = await startPod(
      true,
      {},
      {
        overBudget: () => {
          if (!nested) {
            nested = true;
            pod.io.to("r").emit("inner", "i");
          }
          return false;
        },
      },
    );
    const clients: { packets: unknown[] }[] = [];
    for (const kind of ["websocket", "polling", "websocket"] as const) clients.push(await officialClient(pod, kind));
    pod.io.to("r").emit("outer", "o");
    const got = (c: { packets: unknown[] }, event: string) => c.packets.filter((p) => typeof p === "string" && p.startsWith(`2["${event}"`));
    await waitFor(() => clients.every((c) => got(c, "outer").length >= 1 && got(c, "inner").length >= 1), { what: "every client to get both broadcasts" });
    expect(nested).toBe(true);
    for (const c of clients) {
      expect(got(c, "outer")).toEqual(['2["outer","o"]']);
      expect(got(c, "inner")).toEqual(['2["inner","i"]']);
    }
    expect(pod.direct.count).toBeGreaterThan(0);
  });
});
