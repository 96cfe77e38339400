import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import { createLogger, type Ack } from "@chat/shared";
import { closeAllClients, connectClient, waitFor } from "@chat/testkit";
import { createChatServer, type ChatServer } from "../src/app.js";
import { loadConfig } from "../src/config.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Collects garbage on the next turn (a WeakRef keeps its target until the current job ends). */
const collected = (refs: WeakRef<object>[]) => async () => {
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  return refs.every((ref) => ref.deref() === undefined);
};

// An idle connection should cost as little as possible: nothing may keep its HTTP request or the
// upgrade's response alive once the connection is up (release-requests.ts), and it must still
// work and close like any other.
describe("memory held per connection", () => {
  let server: ChatServer;
  let url: string;
  const held: WeakRef<object>[] = [];

  beforeAll(async () => {
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", POD_NAME: "memory-0", LOG_LEVEL: "warn" });
    server = createChatServer({ config, log: createLogger({ service: "chat", pod: "memory-0", level: "warn" }), instanceId: "memory-0" });
    // After the service's own middleware: it sees the same request and response objects.
    server.io.engine.use((req: object, res: object, next: () => void) => {
      held.push(new WeakRef(req), new WeakRef(res));
      next();
    });
    await new Promise<void>((resolve) => server.httpServer.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.httpServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    closeAllClients();
    await server?.close();
  });

  it("lets the HTTP request and upgrade response of each WebSocket connection be collected", async () => {
    const clients = await Promise.all([0, 1, 2].map((i) => connectClient(url, `ws-${i}`)));
    expect(held.length).toBe(6);
    await waitFor(collected(held), { what: "the requests and responses to be collected" });
    await expectWorking(clients);
  });

  it("does the same for a connection that starts on polling and upgrades to WebSocket", async () => {
    held.length = 0;
    const client = await connectClient(url, "upgrader", { transports: ["polling", "websocket"] });
    await waitFor(() => client.io.engine.transport.name === "websocket", { what: "the upgrade" });
    await waitFor(collected(held), { what: "the polling and upgrade requests to be collected" });
    await expectWorking([client]);
  });

  it("answers every client event through one catch-all listener, with no listener per event on the connection", async () => {
    const client = await connectClient(url, "catch-all");
    const socket = [...server.io.of("/").sockets.values()].find((s) => s.data.user.id === "catch-all")!;
    // A dozen event names in an EventEmitter's listener dictionary cost about 0.6 KiB per connection.
    for (const event of ["join", "message", "leave", "history", "typing"]) expect(socket.listenerCount(event)).toBe(0);
    expect(socket.listenersAny()).toHaveLength(1);
    await expectWorking([client]);
  });

  /** The connections still carry messages, and the server sees each one close. */
  async function expectWorking(clients: Socket[]) {
    for (const c of clients) expect(((await c.emitWithAck("join", { room: "memory" })) as Ack).ok).toBe(true);
    const got = new Promise((resolve) => clients.at(-1)!.once("message", resolve));
    expect(((await clients[0]!.emitWithAck("message", { room: "memory", text: "still here" })) as Ack).ok).toBe(true);
    expect(await got).toMatchObject({ text: "still here" });
    const before = server.io.of("/").sockets.size;
    for (const c of clients) c.close();
    await waitFor(() => server.io.of("/").sockets.size === before - clients.length, { what: "the server to see the clients close" });
  }
});
