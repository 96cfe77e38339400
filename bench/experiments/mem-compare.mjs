// Diagnostic: one chat pod and one baseline server (alternated), N idle connections each, and
// where the RSS growth goes: RSS 2 s after connecting (as the bench measures it), then V8's heap
// before and after a full GC (mem-probe.cjs), and RSS after that GC.
// node bench/experiments/mem-compare.mjs [N=3000] [rounds=1] [kinds=chat,baseline]
import { existsSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll, root, rssKiB, serverEnv, setup, sleep, startLoadgen } from "../procs.mjs";

const N = Number(process.argv[2] ?? 3000);
const rounds = Number(process.argv[3] ?? 1);
const kinds = (process.argv[4] ?? "chat,baseline").split(",");
serverEnv.NODE_OPTIONS = `-r ${join(root, "bench/experiments/mem-probe.cjs")}`;
if (process.env.MEMPROBE_SNAPSHOT) serverEnv.MEMPROBE_SNAPSHOT = "1";
const probe = async (pid) => {
  rmSync(`/tmp/memprobe-${pid}.json`, { force: true });
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    try {
      return JSON.parse(readFileSync(`/tmp/memprobe-${pid}.json`, "utf8")).at(-1);
    } catch {
      /* not yet */
    }
  }
};
/** Writes a heap snapshot of `pid` to /tmp/memprobe-<pid>-<label>.heapsnapshot (mem-probe.cjs, SIGWINCH). */
const snapshot = async (pid, label) => {
  const file = `/tmp/memprobe-${pid}.heapsnapshot`;
  rmSync(file, { force: true });
  process.kill(pid, "SIGWINCH");
  let last = -1;
  for (;;) {
    await sleep(1000);
    const size = existsSync(file) ? statSync(file).size : -1;
    if (size > 0 && size === last) break;
    last = size;
  }
  renameSync(file, `/tmp/memprobe-${pid}-${label}.heapsnapshot`);
  console.log(`snapshot /tmp/memprobe-${pid}-${label}.heapsnapshot`);
};
const kib = (b) => +(b / 1024).toFixed(2);
const lg = await startLoadgen();
try {
  for (let r = 0; r < rounds; r++)
    for (const kind of kinds) {
      const env = await setup(kind, { pods: 1 });
      const pid = env.servers[0].pid;
      await sleep(1000);
      if (process.env.MEMPROBE_SNAPSHOT) await snapshot(pid, "0");
      const p0 = await probe(pid);
      const rss0 = rssKiB(pid);
      const c = await lg.call("connectGroup", { group: "idle", urls: env.urls, count: N, prefix: `${kind}-idle` });
      await sleep(2000);
      const rss1 = rssKiB(pid);
      const p1 = await probe(pid);
      const rss2 = rssKiB(pid);
      if (process.env.MEMPROBE_SNAPSHOT) await snapshot(pid, String(c.connected));
      const per = (a, b) => +((b - a) / c.connected).toFixed(3);
      const spaces = Object.fromEntries(
        Object.keys(p1.after.spaces).map((s) => [
          s,
          [kib((p1.before.spaces[s].size - p0.after.spaces[s].size) / c.connected), kib((p1.after.spaces[s].used - p0.after.spaces[s].used) / c.connected)],
        ]),
      );
      console.log(
        JSON.stringify({
          kind,
          n: c.connected,
          rssPerConnKiB: per(rss0, rss1),
          rssAfterGcPerConnKiB: per(rss0, rss2),
          heapUsedBeforeGc: kib((p1.before.heapUsed - p0.after.heapUsed) / c.connected),
          heapUsedAfterGc: kib((p1.after.heapUsed - p0.after.heapUsed) / c.connected),
          heapTotalBeforeGc: kib((p1.before.heapTotal - p0.after.heapTotal) / c.connected),
          external: kib((p1.after.external - p0.after.external) / c.connected),
          arrayBuffers: kib((p1.after.arrayBuffers - p0.after.arrayBuffers) / c.connected),
          spacesSizeBefore_UsedAfter: spaces,
        }),
      );
      await lg.call("closeGroup", { group: "idle" });
      await env.teardown();
    }
} finally {
  lg.stop();
  await cleanupAll();
}
