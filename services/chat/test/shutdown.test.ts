import { connect, type Socket as NetSocket } from "node:net";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRawClient, startRedis, startService, stopAllServices, waitFor, type RawClient, type RedisServer, type ServiceProcess } from "@chat/testkit";

const DELAY_SECONDS = 1;
const DRAIN_SECONDS = 2;

/** A WebSocket upgrade done by hand, after which everything the pod sends is read and ignored: it never answers a close frame. */
function silentWebSocket(port: number): Promise<NetSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      );
    });
    let seen = "";
    socket.on("data", (chunk: Buffer) => {
      seen += chunk.toString("latin1");
      // 0x81 = a final text frame: the Engine.IO open packet came after the 101.
      if (seen.includes("101 Switching Protocols") && seen.includes("\x81")) resolve(socket);
    });
    socket.on("error", reject);
  });
}

/** A Socket.IO long-polling session with a GET in flight (the pod holds it until it has something to send). */
async function pendingLongPoll(port: number): Promise<{ done: Promise<number | string> }> {
  const base = `http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
  await fetch(`${base}&sid=${sid}`, { method: "POST", body: `40${JSON.stringify({ name: "poller" })}` });
  await fetch(`${base}&sid=${sid}`); // the namespace's answer
  const done = new Promise<number | string>((resolve) => {
    const req = request(`${base}&sid=${sid}`, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve("reset"));
    });
    req.on("error", () => resolve("reset"));
    req.end();
  });
  return { done };
}

// However its clients behave, a pod told to stop drains and exits 0 in time: connections still
// open after the drain are destroyed (app.ts close(), connections.ts), and shutdown as a whole is
// bounded (operations.ts drainTimeoutMs).
describe("shutdown with clients that do not cooperate", () => {
  let redis: RedisServer;
  let pod: ServiceProcess;
  let stalled: RawClient;
  let silent: NetSocket;
  let idle: NetSocket;
  let poll: { done: Promise<number | string> };

  beforeAll(async () => {
    redis = await startRedis();
    pod = await startService("chat", { env: { REDIS_URL: redis.url, SHUTDOWN_DELAY_SECONDS: String(DELAY_SECONDS), DRAIN_SECONDS: String(DRAIN_SECONDS) } });
    stalled = await connectRawClient(pod.url, "stalled");
    await stalled.join("room");
    silent = await silentWebSocket(pod.port);
    idle = await new Promise<NetSocket>((resolve) => {
      const socket = connect(pod.port, "127.0.0.1", () => resolve(socket));
    });
    poll = await pendingLongPoll(pod.port);
  });

  afterAll(async () => {
    stalled?.ws.terminate();
    silent?.destroy();
    idle?.destroy();
    await stopAllServices();
    await redis?.dispose();
  });

  it("exits 0 within SHUTDOWN_DELAY_SECONDS + DRAIN_SECONDS + 2 s with a stalled reader, a silent WebSocket, an idle TCP connection and a long-poll in flight", async () => {
    stalled.pause();
    const silentClosed = new Promise<void>((resolve) => silent.on("close", () => resolve()));
    const idleClosed = new Promise<void>((resolve) => idle.on("close", () => resolve()));
    const termAt = Date.now();
    await pod.kill("SIGTERM");
    const code = await pod.exited;
    const seconds = (Date.now() - termAt) / 1000;
    expect(code).toBe(0);
    expect(seconds).toBeLessThan(DELAY_SECONDS + DRAIN_SECONDS + 2);
    expect(pod.logs.some((line) => line.msg === "destroyed connections still open after the drain")).toBe(true);
    await Promise.all([silentClosed, idleClosed, poll.done]);
    let stalledClosed = false;
    void stalled.closed.then(() => (stalledClosed = true));
    stalled.resume();
    await waitFor(() => stalledClosed, { what: "the stalled client to see its connection closed" });
  });
});
