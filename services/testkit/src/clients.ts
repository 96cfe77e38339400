import { io, type Socket } from "socket.io-client";
import { ChatClient, type ChatClientOptions } from "@chat/client";
import { waitFor } from "./wait.js";

export interface ClientOptions {
  /** Handshake `auth`; defaults to `{ name }`. Pass `undefined` explicitly to send none. */
  auth?: Record<string, unknown> | undefined;
  /** @default ["websocket"] */
  transports?: ("websocket" | "polling")[];
  /** Reconnect after a drop (socket.io-client's own logic). @default false */
  reconnection?: boolean;
}

const open = new Set<Socket>();

/** Connects an official socket.io-client and resolves once connected (rejects on connect_error). */
export function connectClient(url: string, name: string, options: ClientOptions = {}): Promise<Socket> {
  const socket = io(url, {
    auth: "auth" in options ? options.auth : { name },
    transports: options.transports ?? ["websocket"],
    reconnection: options.reconnection ?? false,
    forceNew: true,
    timeout: 20_000,
  });
  open.add(socket);
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      open.delete(socket);
      socket.close();
      reject(err);
    });
  });
}

/** Connects `count` clients spread round-robin over `urls`, a few at a time. */
export async function connectMany(urls: string[], count: number, prefix = "user"): Promise<Socket[]> {
  const clients: Socket[] = [];
  const batch = 50;
  for (let start = 0; start < count; start += batch) {
    const round = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      round.push(connectClient(urls[i % urls.length]!, `${prefix}-${i}`));
    }
    clients.push(...(await Promise.all(round)));
  }
  return clients;
}

/** Closes every client this module opened (for `afterAll`). */
export function closeAllClients(): void {
  for (const socket of open) socket.close();
  open.clear();
}

/** Records what one event brings to a client, so a test can wait on it. */
export function record<T = unknown>(socket: Socket, event: string): T[] {
  const seen: T[] = [];
  socket.on(event, (payload: T) => seen.push(payload));
  return seen;
}

/** Waits until every list holds at least `count` items. */
export async function waitForCounts(lists: unknown[][], count: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => lists.every((list) => list.length >= count), {
    timeoutMs,
    what: () => `${lists.length} clients to receive ${count} each (lowest so far: ${Math.min(...lists.map((l) => l.length))})`,
  });
}

/** Connects a `ChatClient` (the client helper users get) and resolves once connected. */
export async function connectChatClient(url: string, name: string, options: Partial<ChatClientOptions> = {}): Promise<ChatClient> {
  const client = new ChatClient(url, {
    auth: { name },
    // The client's 5 s default is for people; a loaded CI machine answers 500 joins slower.
    ackTimeoutMs: 20_000,
    ...options,
    socket: { transports: ["websocket"], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 1000, ...options.socket },
  });
  helpers.add(client);
  await new Promise<void>((resolve, reject) => {
    client.socket.once("connect", () => resolve());
    client.socket.once("connect_error", (err) => reject(err));
  });
  return client;
}

const helpers = new Set<ChatClient>();

/** Closes every `ChatClient` this module opened. */
export function closeAllChatClients(): void {
  for (const client of helpers) client.close();
  helpers.clear();
}
