import { WebSocket } from "ws";

/**
 * A Socket.IO client spoken by hand over a plain `ws` WebSocket (Engine.IO protocol 4), for what
 * the official client cannot do: stop reading on purpose (`pause()`), never answer a close
 * frame, or show the exact frames a server sent.
 */
export interface RawClient {
  ws: WebSocket;
  /** Every text or binary frame received, in order, as sent (e.g. `42["message",{...}]`). */
  frames: (string | Buffer)[];
  /** Sends `join` and resolves with its ack's payload. */
  join(room: string): Promise<unknown>;
  /** Stops reading from the TCP socket: what the server sends piles up on its side. */
  pause(): void;
  resume(): void;
  /** Resolves with the close code and reason once the connection is closed. */
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a WebSocket to a chat pod and connects to the main namespace as `name` (AUTH_MODE=open). */
export async function connectRawClient(url: string, name: string, { answerPings = true } = {}): Promise<RawClient> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
  const frames: (string | Buffer)[] = [];
  const waiting = new Map<number, (payload: unknown) => void>();
  let nextAck = 0;
  let connected: () => void;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  // A pod that closes or destroys the connection (a slow consumer, a shutdown) surfaces as "close";
  // the reset that may come first is not an error of the test.
  ws.on("error", () => undefined);
  ws.on("message", (data: Buffer, isBinary) => {
    const frame = isBinary ? data : data.toString();
    frames.push(frame);
    if (typeof frame !== "string") return;
    if (frame === "2" && answerPings) ws.send("3");
    else if (frame.startsWith("0{")) ws.send(`40${JSON.stringify({ name })}`);
    else if (frame.startsWith("40")) connected();
    else if (frame.startsWith("43")) {
      const match = /^43(\d+)(.*)$/s.exec(frame);
      if (match) waiting.get(Number(match[1]))?.(JSON.parse(match[2]!)[0]);
    }
  });
  await Promise.race([ready, closed.then(({ code }) => Promise.reject(new Error(`closed (${code}) before connecting`)))]);
  return {
    ws,
    frames,
    join(room) {
      const id = nextAck++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        ws.send(`42${id}${JSON.stringify(["join", { room }])}`);
      });
    },
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    closed,
  };
}
