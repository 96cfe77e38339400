// Experiment (not used by default): `NODE_OPTIONS=--require=./bench/experiments/fanout-paths.cjs`
// Three ways to hand one broadcast's pre-encoded WebSocket frame to each recipient, switched at
// run time (SIGWINCH reads the mode from $FANOUT_MODE_FILE), so one set of processes can be
// measured in alternation:
//   off:    Socket.IO as shipped (Engine.IO packet per recipient, ws cork + 2 writes + uncork)
//   merge:  the frame's header and payload merged once per broadcast: one write per recipient
//   direct: merged, and written straight to the TCP socket when nothing is queued before it
//   room:   direct, and a broadcast to one room walks that room's members without the Set that
//           de-duplicates members of several rooms
const path = require("node:path");
const { readFileSync } = require("node:fs");
const paths = [path.join(process.cwd(), "services/chat"), process.cwd()];
const { Adapter } = require(require.resolve("socket.io-adapter", { paths }));
let mode = "off";
process.on("SIGWINCH", () => {
  mode = readFileSync(process.env.FANOUT_MODE_FILE, "utf8").trim();
});
const broadcast = Adapter.prototype.broadcast;
Adapter.prototype.broadcast = function (packet, opts) {
  if (mode === "off") return broadcast.call(this, packet, opts);
  const flags = opts.flags || {};
  const packetOpts = { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
  packet.nsp = this.nsp.name;
  const encodedPackets = this._encode(packet, packetOpts);
  const pre = packetOpts.wsPreEncodedFrame;
  if (pre && pre.length === 2) packetOpts.wsPreEncodedFrame = [Buffer.concat(pre)];
  const frame = mode !== "merge" && !packetOpts.volatile ? packetOpts.wsPreEncodedFrame?.[0] : undefined;
  const deliver = (socket) => {
    if (frame) {
      const conn = socket.client.conn;
      const t = conn.transport;
      if (conn.readyState === "open" && conn.writeBuffer.length === 0 && t.writable && t.name === "websocket") {
        const ws = t.socket;
        const raw = ws._socket;
        const sender = ws._sender;
        if (ws.readyState === 1 && raw && raw.writable && sender && sender._state === 0 && sender._queue.length === 0) {
          raw.write(frame);
          return;
        }
      }
    }
    if (typeof socket.notifyOutgoingListeners === "function") socket.notifyOutgoingListeners(packet);
    socket.client.writeToEngine(encodedPackets, packetOpts);
  };
  if (mode === "room" && opts.rooms.size === 1 && !(opts.except && opts.except.size)) {
    const [room] = opts.rooms;
    const sockets = this.nsp.sockets;
    for (const id of this.rooms.get(room) ?? []) {
      const socket = sockets.get(id);
      if (socket) deliver(socket);
    }
    return;
  }
  this.apply(opts, deliver);
};
