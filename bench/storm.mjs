// Issue 22's reconnect storm, run by bench.mjs (`--only=storm`): 3 pods behind a TCP round-robin
// balancer, `clients` real clients (bench/storm-clients.mjs: @chat/client for the chat, plain
// socket.io-client for the baseline) in rooms of `roomSize` with steady traffic, then SIGKILL of one
// pod. Reports how long until every dropped client is back (chat: reconnected, re-joined and caught
// up; baseline: reconnected and re-joined), the survivors' CPU meanwhile, the latency of live
// messages to the clients that never dropped, what failed, and what some client still lacks.
import { startBalancer, waitFor } from "@chat/testkit";
import { cpuOf, setup, sleep, startLoadgen } from "./procs.mjs";

export const STORM_JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef";

async function stormRun({ say, quick, kind, jwt = false }) {
  const clients = quick ? 600 : 3000;
  const roomSize = quick ? 20 : 100;
  const ratePerRoom = 1;
  const label = `${kind}${jwt ? " (AUTH_MODE=jwt)" : ""}`;
  const env = await setup(kind, { env: jwt ? { AUTH_MODE: "jwt", JWT_SECRET: STORM_JWT_SECRET } : {} });
  const balancer = await startBalancer(env.servers.map((s) => s.port));
  const sc = await startLoadgen("bench/storm-clients.mjs");
  try {
    const cpu0 = cpuOf(env.pids());
    const c = await sc.call("connect", {
      kind,
      url: balancer.url,
      count: clients,
      prefix: `storm-${kind}-`,
      roomSize,
      jwtSecret: jwt ? STORM_JWT_SECRET : undefined,
    });
    const cpu1 = cpuOf(env.pids());
    const handshakeCpuUs = Math.round((1e6 * Object.keys(cpu0).reduce((a, k) => a + cpu1[k] - cpu0[k], 0)) / Math.max(1, c.connected));
    const j = await sc.call("join", {});
    say(`storm ${label}: ${c.connected}/${clients} connected in ${c.ms} ms (${handshakeCpuUs} µs server CPU per handshake), ${j.joined} joined in ${j.ms} ms`);
    if (c.connected < clients || j.failed) throw new Error(`storm ${label}: ${c.connected} connected, ${j.failed} joins failed: ${JSON.stringify(c.failures)}`);
    await sleep(1000);
    const { rooms } = await sc.call("start", { ratePerRoom });
    await sleep(quick ? 2000 : 4000);

    const victim = env.servers[1];
    const survivors = env.pids().filter(({ name }) => name !== victim.name);
    const onVictim = balancer.connections().get(victim.port) ?? 0;
    // The clients' process too: all the storm's clients share it (and one core), so when it is busy the
    // times measure it as much as the servers.
    const watched = [...survivors, { name: "clients", pid: sc.pid }];
    const before = cpuOf(watched);
    const { at } = await sc.call("beginStorm");
    await victim.stop("SIGKILL");
    say(`  killed ${victim.name} (${onVictim} clients on it) with SIGKILL; ${rooms} rooms of ${roomSize}, ${ratePerRoom} msg/s each`);
    let last;
    let timedOut = false;
    await waitFor(
      async () => {
        last = await sc.call("status");
        return last.dropped >= onVictim && last.back >= last.dropped;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "the dropped clients to be back" },
    ).catch(() => (timedOut = true));
    const wallS = (performance.timeOrigin + performance.now() - at) / 1000;
    const after = cpuOf(watched);
    const cpu = Object.fromEntries(survivors.map(({ name }) => [name, +(after[name] - before[name]).toFixed(2)]));
    const clientsCores = +((after.clients - before.clients) / wallS).toFixed(2);
    await sleep(1000);
    const stats = await sc.call("stop", { settleMs: 2000 });
    const podsCpu = survivors.filter(({ name }) => name !== "redis").reduce((a, { name }) => a + cpu[name], 0);
    const result = {
      kind,
      auth: jwt ? "jwt" : "open",
      clients,
      roomSize,
      rooms,
      ratePerRoom,
      onVictim,
      handshakeCpuUs,
      timedOut,
      stormSeconds: +wallS.toFixed(2),
      survivorsCpuSeconds: cpu,
      survivorsCores: +(podsCpu / wallS).toFixed(2),
      clientsCores,
      survivorsCpuUsPerReconnect: stats.dropped ? Math.round((1e6 * (podsCpu + (cpu.redis ?? 0))) / stats.dropped) : null,
      ...stats,
      statusAtEnd: last,
    };
    say(
      `  ${label}: ${stats.back}/${stats.dropped} back in ${stats.allBackMs} ms (p50 ${stats.backMs.p50} ms); survivors ${result.survivorsCores} cores, clients' process ${clientsCores}` +
        ` (${result.survivorsCpuUsPerReconnect} µs per reconnect); calm clients' p99 ${stats.calmLatency.p99} ms over ${stats.calmLatency.count} deliveries;` +
        ` lost ${stats.lostMessages} messages (${stats.lostPairs} client×message, ${stats.acked} acked); failures ${JSON.stringify(stats.failures)}${timedOut ? "  TIMED OUT" : ""}`,
    );
    await sc.call("close");
    return result;
  } finally {
    sc.stop();
    await balancer.close();
    await env.teardown();
  }
}

/** The storm for the chat (open, then AUTH_MODE=jwt) and the baseline; a failed run is recorded and the others go on. */
export async function stormScenario({ say, quick, jwt = true }) {
  const out = {};
  for (const [key, kind, withJwt] of [["chat", "chat", false], ...(jwt ? [["chatJwt", "chat", true]] : []), ["baseline", "baseline", false]]) {
    try {
      out[key] = await stormRun({ say, quick, kind, jwt: withJwt });
    } catch (err) {
      say(`storm ${key}: failed: ${err.stack ?? err}`);
      out[key] = { error: String(err.message ?? err) };
    }
  }
  return out;
}
