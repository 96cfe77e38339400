import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface Received {
  path: string;
  signature: string;
  idempotencyKey: string;
  body: string;
  events: { id: string; type: string; room: string; ts: number; data: Record<string, unknown> }[];
  at: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Decides each answer: a status, or "hang" (never answers in time). */
  answer: (path: string, n: number) => number | "hang";
  /** Closes the port (refusing connections) for `ms`, then listens again on it. */
  goDown(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** A real HTTP endpoint for webhooks, which records every request it reads (answered or not). */
export async function startReceiver(answer: Receiver["answer"]): Promise<Receiver> {
  const sockets = new Set<Socket>();
  let count = 0;
  const receiver: Receiver = {
    url: "",
    received: [],
    answer,
    async goDown(ms) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      await new Promise((resolve) => setTimeout(resolve, ms));
      await listen(port);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      const parsed = JSON.parse(body) as { events: Received["events"] };
      receiver.received.push({
        path: req.url ?? "",
        signature: String(req.headers["x-chat-signature"]),
        idempotencyKey: String(req.headers["idempotency-key"]),
        body,
        events: parsed.events,
        at: Date.now(),
      });
      const status = receiver.answer(req.url ?? "", ++count);
      if (status === "hang") return; // the notifier gives up first; the socket is destroyed on close
      res.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
  };
  let server: Server = createServer(handle);
  const listen = (at: number) =>
    new Promise<number>((resolve, reject) => {
      server = createServer(handle);
      server.on("connection", (socket) => {
        sockets.add(socket);
        socket.once("close", () => sockets.delete(socket));
      });
      server.once("error", reject);
      server.listen(at, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
    });
  const port = await listen(0);
  receiver.url = `http://127.0.0.1:${port}`;
  return receiver;
}
