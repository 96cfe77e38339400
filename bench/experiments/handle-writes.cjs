// socket.write() against a write on the TCP handle (compat handleWriter, issue 16): 333 loopback
// connections to a child process that reads, 230-byte writes to each per round, CPU per write (user and
// system) of each way, alternated 3 times. Usage: node bench/experiments/handle-writes.cjs [rounds]
const net = require("net");
const { fork } = require("child_process");
if (process.argv[2] === "client") {
  const port = +process.argv[3];
  const n = +process.argv[4];
  let got = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, "127.0.0.1");
    s.on("data", (d) => {
      got += d.length;
    });
  }
  setInterval(() => process.connected && process.send(got), 200);
  process.on("disconnect", () => process.exit(0));
  return;
}
const N = 333,
  ROUNDS = +process.argv[2] || 3000;
const { WriteWrap, kLastWriteWasAsync, streamBaseState } = process.binding("stream_wrap"); // what compat/node.ts uses
const buf = Buffer.alloc(230, 65);
const socks = [];
const srv = net.createServer((s) => {
  s.setNoDelay(true);
  socks.push(s);
  if (socks.length === N) void go();
});
srv.listen(0, "127.0.0.1", () => {
  const c = fork(__filename, ["client", srv.address().port, N]);
  c.on("message", () => {});
});
function oncomplete() {}
function direct(s, data) {
  const h = s._handle;
  const req = new WriteWrap();
  req.handle = h;
  req.oncomplete = oncomplete;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  const err = h.writeBuffer(req, data);
  if (err) throw new Error("err " + err);
  if (streamBaseState[kLastWriteWasAsync]) req.buffer = data;
}
async function run(mode) {
  const c0 = process.cpuUsage();
  for (let r = 0; r < ROUNDS; r++) {
    if (mode === "stream") for (const s of socks) s.write(buf);
    else for (const s of socks) direct(s, buf);
    await new Promise((res) => setTimeout(res, 1));
  }
  const c = process.cpuUsage(c0);
  return {
    mode,
    usPerWrite: +((c.user + c.system) / (ROUNDS * N)).toFixed(3),
    user: +(c.user / (ROUNDS * N)).toFixed(3),
    sys: +(c.system / (ROUNDS * N)).toFixed(3),
  };
}
async function go() {
  await new Promise((r) => setTimeout(r, 500));
  for (const mode of ["stream", "direct", "stream", "direct", "stream", "direct"]) console.log(JSON.stringify(await run(mode)));
  process.exit(0);
}
