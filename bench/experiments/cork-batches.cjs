// Experiment (not used by default): `--chat-env=NODE_OPTIONS=--require=./bench/experiments/cork-batches.cjs`
// When Engine.IO sends a batch of packets to one WebSocket (the packets that queued up while the
// previous write was in flight), cork the TCP socket around the batch, so the whole batch leaves
// in one writev() instead of one syscall per packet. A batch of one is sent as before.
const path = require("node:path");
const main = require.resolve("engine.io", { paths: [path.join(process.cwd(), "services/chat"), process.cwd()] });
const { WebSocket: WebSocketTransport } = require(path.join(main, "../transports/websocket.js"));
const send = WebSocketTransport.prototype.send;
WebSocketTransport.prototype.send = function (packets) {
  const raw = packets.length > 1 ? this.socket?._socket : undefined;
  if (!raw) return send.call(this, packets);
  raw.cork();
  try {
    send.call(this, packets);
  } finally {
    raw.uncork();
  }
};
