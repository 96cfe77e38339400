import { createServer, type Server as HttpServer } from "node:http";
import { fileURLToPath } from "node:url";
import express, { type Express } from "express";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import type { Redis } from "ioredis";
import { BUS_KEY, roomName, type Logger } from "@chat/shared";
import type { ChatConfig } from "./config.js";
import type { ChatContext } from "./context.js";
import { bindHandlers } from "./events.js";
import { openIdentity, userOf, userRoom } from "./identity.js";
import { messageHandlers } from "./messages.js";
import { createPresence, type Presence } from "./presence.js";
import { joinedRooms, leaveQuietly, roomHandlers } from "./rooms.js";

export interface ChatServerOptions {
  config: ChatConfig;
  log: Logger;
  /** Two connections (publish and subscribe) to scale out; without them, a single node. */
  redis?: { pub: Redis; sub: Redis };
  /** Tells this process apart from an earlier one with the same pod name. */
  instanceId: string;
}

export interface ChatServer {
  app: Express;
  httpServer: HttpServer;
  io: Server;
  presence: Presence;
  /** Disconnects every client and stops; does not close the Redis connections it was given. */
  close(): Promise<void>;
}

const publicDir = fileURLToPath(new URL("./public/", import.meta.url));

/** Builds the chat service from its dependencies, without listening. */
export function createChatServer({ config, log, redis, instanceId }: ChatServerOptions): ChatServer {
  const app = express();
  app.disable("x-powered-by");
  app.use(express.static(publicDir, { index: "index.html", maxAge: "1h" }));

  const httpServer = createServer(app);
  const io = new Server(httpServer, {
    maxHttpBufferSize: config.MAX_HTTP_BUFFER_SIZE,
    // The web page bundles its own client; serving another copy is surface for nothing.
    serveClient: false,
  });
  if (redis) io.adapter(createAdapter(redis.pub, redis.sub, { key: BUS_KEY }));

  const presence = createPresence(redis?.pub, instanceId, log, { ttlSeconds: config.PRESENCE_TTL_SECONDS });
  const ctx: ChatContext = {
    io,
    config,
    log,
    presence,
    redis,
    busReady: () => !redis || (redis.pub.status === "ready" && redis.sub.status === "ready"),
  };

  app.get("/v1/rooms/:room/members", async (req, res) => {
    const room = roomName.safeParse(req.params.room);
    if (!room.success) {
      res.status(400).json({ error: { code: "bad_request", message: "room: must be 1-64 characters of A-Z a-z 0-9 _ . : -" } });
      return;
    }
    try {
      res.json({ room: room.data, members: await presence.members(room.data) });
    } catch {
      res.status(503).json({ error: { code: "unavailable", message: "Redis is unreachable" } });
    }
  });

  io.use((socket, next) => {
    try {
      socket.data.user = openIdentity(socket.handshake.auth);
      next();
    } catch (err) {
      next(err as Error);
    }
  });

  const handlers = { ...roomHandlers(ctx), ...messageHandlers(ctx) };
  io.on("connection", (socket) => {
    socket.join(userRoom(userOf(socket).id));
    bindHandlers(socket, handlers, log);
    socket.on("disconnecting", () => {
      for (const room of joinedRooms(socket)) void leaveQuietly(ctx, socket, room);
    });
  });

  return {
    app,
    httpServer,
    io,
    presence,
    async close() {
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await presence.close().catch((err: Error) => log.warn({ err: err.message }, "presence cleanup failed"));
    },
  };
}
