// The baseline: a minimal Socket.IO + @socket.io/redis-adapter chat with the same room fan-out
// and event names as services/chat, and nothing else (no log, no presence, no validation).
import { createServer } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";

const pub = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const sub = pub.duplicate();
// The bench's only hook, with BENCH_ELD=1 (the connections scenario): GET /bench/eld answers the
// event-loop delay since the last call (ms), sampled like the chat's nodejs_eventloop_lag_* (the delay past each 100 ms sample).
const ELD_MS = 100;
const eld = monitorEventLoopDelay({ resolution: ELD_MS });
if (process.env.BENCH_ELD === "1") eld.enable();
const httpServer = createServer((req, res) => {
  const ms = (ns) => +Math.max(0, ns / 1e6 - ELD_MS).toFixed(2);
  if (req.url === "/bench/eld") res.end(JSON.stringify({ mean: ms(eld.mean), p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) }));
  else res.writeHead(404).end();
  eld.reset();
});
const io = new Server(httpServer, { serveClient: false });
io.adapter(createAdapter(pub, sub));
let seq = 0;

io.use((socket, next) => {
  const name = socket.handshake.auth?.name;
  if (typeof name === "string" && name.length >= 1 && name.length <= 32) return next();
  next(new Error("auth.name is required"));
});
io.on("connection", (socket) => {
  const user = { id: socket.handshake.auth.name, name: socket.handshake.auth.name };
  socket.on("join", ({ room }, ack) => (socket.join(room), ack({ ok: true, room })));
  socket.on("message", ({ room, text }, ack) => {
    const ts = Date.now();
    const id = `${ts}-${seq++}`;
    io.to(room).emit("message", { id, room, text, user, ts });
    ack({ ok: true, id, ts });
  });
});
process.once("SIGTERM", () => process.exit(0)); // so that --cpu-prof writes its profile
httpServer.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const { port } = httpServer.address();
  console.log(JSON.stringify({ level: 30, port, msg: `baseline is up at http://127.0.0.1:${port}/` }));
});
