// Reliability (chat only): 3 pods behind a TCP round-robin balancer; under load, SIGKILL one pod
// ("kill") or SIGKILL and restart Redis ("redis"). Reports reconnect/re-sync times and the acked
// messages that some client still lacks after recovery.
import { startBalancer, waitFor } from "@chat/testkit";
import { setup, sleep } from "./procs.mjs";

const nowMs = () => performance.timeOrigin + performance.now();

export async function reliability(lg, what, cfg, say) {
  const env = await setup("chat", { aof: what === "redis" });
  const balancer = await startBalancer(env.servers.map((s) => s.port));
  const room = "bench-rel";
  try {
    const c = await lg.call("connectGroup", { group: "rel", urls: [balancer.url], count: cfg.relClients, prefix: `rel-${what}-`, reconnect: true, full: true });
    const j = await lg.call("joinGroup", { group: "rel", room });
    say(`reliability (${what}): ${c.connected} clients via the balancer, ${j.joined} joined; ${cfg.relRate} msg/s with retries`);
    await sleep(1000);
    await lg.call("relStart", { group: "rel", room, rate: cfg.relRate, senders: 20 });
    await sleep(cfg.relBeforeMs);
    const result = { clients: c.connected, rate: cfg.relRate };
    const started = nowMs();
    if (what === "kill") {
      const victim = env.servers[1];
      result.podClients = balancer.connections().get(victim.port);
      await victim.svc.kill("SIGKILL");
      result.killedAt = started;
      say(`  killed ${victim.name} (${result.podClients} clients) with SIGKILL`);
      await waitFor(
        async () => {
          const s = await lg.call("relStatus", { group: "rel" });
          return s.connected === s.total && s.catchingUp === 0 && s.disconnects > 0;
        },
        { timeoutMs: 30_000, intervalMs: 50, what: "clients to reconnect" },
      );
      result.allBackMs = Math.round(nowMs() - started);
    } else {
      await env.redis.stop({ kill: true });
      const killed = nowMs();
      say(`  redis SIGKILLed; restarting in ${cfg.redisOutageMs} ms`);
      await sleep(cfg.redisOutageMs);
      await env.redis.start();
      const up = nowMs();
      result.outageMs = Math.round(up - killed);
      result.redisUpAt = up;
      await waitFor(
        async () => {
          const s = await lg.call("relStatus", { group: "rel" });
          return s.resyncs >= s.total && s.catchingUp === 0 && s.lastOk > up;
        },
        { timeoutMs: 30_000, intervalMs: 50, what: "clients to re-sync" },
      );
      result.allBackMs = Math.round(nowMs() - up);
    }
    await sleep(cfg.relAfterMs);
    const stats = await lg.call("relStop", { group: "rel", settleMs: 2000 });
    Object.assign(result, stats);
    if (what === "kill") {
      result.reconnectAllMs = stats.lastRejoinAt ? Math.round(stats.lastRejoinAt - started) : null;
      say(
        `  pod kill: ${stats.reconnected} clients reconnected + caught up, p50 ${stats.reconnectMs.p50} ms, max ${stats.reconnectMs.max} ms after their disconnect;` +
          ` lost ${stats.lostMessages} messages (${stats.lostPairs} client×message); ${stats.acked}/${stats.sent} acked, ${stats.retries} retries, ${stats.gaveUp} gave up`,
      );
    } else {
      result.resyncAllMs = stats.lastResyncRejoin ? Math.round(stats.lastResyncRejoin - result.redisUpAt) : null;
      result.firstResyncMs = stats.firstResync ? Math.round(stats.firstResync - result.redisUpAt) : null;
      say(
        `  redis restart: outage ${result.outageMs} ms; resync of all ${stats.resyncs} clients done ${result.resyncAllMs} ms after Redis was up;` +
          ` lost ${stats.lostMessages} messages (${stats.lostPairs} client×message); ${stats.acked}/${stats.sent} acked, ${stats.unavailableAcks} unavailable acks, ${stats.retries} retries, ${stats.gaveUp} gave up`,
      );
    }
    await lg.call("closeGroup", { group: "rel" });
    return result;
  } finally {
    await balancer.close();
    await env.teardown();
  }
}
