// Diagnostic preload (NODE_OPTIONS=-r ./bench/experiments/mem-probe.cjs): on SIGUSR2, writes this
// process's memory (RSS, V8 heap spaces, external) before and after a full GC (none with
// MEMPROBE_NOGC=1) to /tmp/memprobe-<pid>.json; with MEMPROBE_SNAPSHOT=1, SIGWINCH writes a heap snapshot.
const v8 = require("node:v8");
const fs = require("node:fs");
v8.setFlagsFromString("--expose-gc");
const gc = require("node:vm").runInNewContext("gc");
const snap = () => ({
  ...process.memoryUsage(),
  spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }])),
});
const out = [];
process.on("SIGUSR2", () => {
  const before = snap();
  if (!process.env.MEMPROBE_NOGC) gc();
  const after = process.env.MEMPROBE_NOGC ? before : snap();
  out.push({ t: Date.now(), before, after });
  fs.writeFileSync(`/tmp/memprobe-${process.pid}.json`, JSON.stringify(out, null, 1));
});
if (process.env.MEMPROBE_SNAPSHOT) process.on("SIGWINCH", () => v8.writeHeapSnapshot(`/tmp/memprobe-${process.pid}.heapsnapshot`));
