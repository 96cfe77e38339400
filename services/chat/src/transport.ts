import type { Server as HttpServer } from "node:http";
import { fileURLToPath } from "node:url";
import express, { type Express } from "express";
import { Server } from "socket.io";
import type { Logger } from "@chat/shared";
import type { ChatConfig } from "./config.js";
import { trackConnections, type Connections } from "./connections.js";
import { originCheck } from "./handshake.js";
import { limitSlowRequests, securityHeaders } from "./http-guard.js";
import type { ChatServerIo } from "./socket-types.js";
import { createListener, type Listener } from "./tls.js";

/** The HTTP side of the chat: the express app, its listener (http or https) and Socket.IO on it. */
export interface Transport {
  app: Express;
  listener: Listener;
  httpServer: HttpServer;
  /** Every open TCP connection, for the shutdown. */
  connections: Connections;
  io: ChatServerIo;
}

const publicDir = fileURLToPath(new URL("./public/", import.meta.url));

/** Builds the web server and Socket.IO on it, without listening. */
export function createTransport(config: ChatConfig, log: Logger): Transport {
  const app = express();
  app.disable("x-powered-by");
  app.use(securityHeaders);
  app.use(express.static(publicDir, { index: "index.html", maxAge: "1h" }));

  // https/wss when TLS_CERT_FILE and TLS_KEY_FILE are set (reloaded when they change), else http.
  const tlsFiles = config.TLS_CERT_FILE && config.TLS_KEY_FILE ? { certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE } : undefined;
  const listener = createListener(app, tlsFiles, log);
  const httpServer = listener.server;
  const connections = trackConnections(httpServer);
  limitSlowRequests(httpServer);
  const io: ChatServerIo = new Server(httpServer, {
    maxHttpBufferSize: config.MAX_HTTP_BUFFER_SIZE,
    // The web page bundles its own client; serving another copy is surface for nothing.
    serveClient: false,
    // Other origins only when listed (never `*`): long-polling is refused in allowRequest, a
    // WebSocket by the handshake middleware, with a connect_error that says why.
    cors: config.CORS_ORIGINS ? { origin: config.CORS_ORIGINS } : undefined,
    allowRequest: originCheck(config.CORS_ORIGINS),
  });
  return { app, listener, httpServer, connections, io };
}
