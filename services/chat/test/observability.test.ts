import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  promtoolCheck,
  record,
  repoRoot,
  startPrometheus,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type PrometheusServer,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack } from "@chat/shared";

const API_KEY = "observability-key-0123456789";
const MESSAGES = 20;
const MEMBERS = 10;

describe("metrics scraped by a real Prometheus", () => {
  let redis: RedisServer;
  let pods: ServiceProcess[];
  let notifier: ServiceProcess;
  let prometheus: PrometheusServer;
  let clients: Socket[];

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url };
    [pods, notifier] = await Promise.all([
      // Only chat-0 serves /debug/bus (it names users and rooms, so it is off by default).
      Promise.all([0, 1].map((i) => startService("chat", { pod: `chat-${i}`, env: i === 0 ? { ...env, DEBUG_ENDPOINTS: "1" } : env }))),
      startService("notifier", { pod: "notifier-0", env: { ...env, NOTIFIER_API_KEYS: API_KEY } }),
    ]);
    prometheus = await startPrometheus([...pods, notifier].map((s) => ({ address: `127.0.0.1:${s.probePort}`, labels: { pod: s.pod, namespace: "test" } })));
    clients = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => connectClient(pods[i % 2]!.url, `member-${i}`)));
  });

  afterAll(async () => {
    closeAllClients();
    await prometheus?.stop();
    await stopAllServices();
    await redis?.dispose();
  });

  it("counts what the traffic did, and Prometheus reads it back", async () => {
    for (const c of clients) expect(((await c.emitWithAck("join", { room: "obs" })) as Ack).ok).toBe(true);
    const inboxes = clients.map((c) => record(c, "message"));
    const notes = clients.map((c) => record(c, "notification"));
    for (let i = 0; i < MESSAGES; i++) {
      expect(((await clients[i % MEMBERS]!.emitWithAck("message", { room: "obs", text: `private words ${i}` })) as Ack).ok).toBe(true);
    }
    const refused: Ack = await clients[0]!.emitWithAck("message", { room: "elsewhere", text: "x" });
    expect(refused.ok).toBe(false);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${notifier.url}/v1/rooms/obs/events`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ type: "ping", data: { i } }),
      });
      expect(res.status).toBe(202);
    }
    await waitFor(() => inboxes.every((i) => i.length === MESSAGES) && notes.every((n) => n.length === 3), { what: "all deliveries" });

    const expectations: [string, number][] = [
      ['sum(chat_messages_received_total{result="ok"})', MESSAGES],
      ['sum(chat_messages_received_total{result="not_in_room"})', 1],
      ['sum(chat_joins_total{result="ok"})', MEMBERS],
      ["sum(chat_connected_clients)", MEMBERS],
      ['sum(chat_deliveries_total{event="message"})', MESSAGES * MEMBERS],
      ['sum(chat_deliveries_total{event="notification"})', 3 * MEMBERS],
      // Each pod times each message once, however many members it has.
      ["sum(chat_fanout_latency_seconds_count)", MESSAGES * 2],
      ["sum(chat_rooms_with_local_members)", 2],
      ["min(chat_redis_up)", 1],
      ['sum(notifier_events_accepted_total{intake="http"})', 3],
      ['sum(notifier_events_delivered_total{intake="http"})', 3],
      ["sum(notifier_stream_pending_entries)", 0],
    ];
    for (const [expr, value] of expectations) {
      let last: number | undefined;
      await waitFor(async () => (last = await prometheus.scalar(expr)) === value, {
        timeoutMs: 15_000,
        intervalMs: 250,
        what: () => `${expr} to be ${value} in Prometheus (got ${last})`,
      });
    }
    // Logs never carry message texts.
    for (const pod of pods) expect(JSON.stringify(pod.logs)).not.toContain("private words");
    const histogram = await prometheus.scalar('sum(notifier_http_request_duration_seconds_count{route="/v1/rooms/:room/events",status="202"})');
    expect(histogram).toBe(3);
  });

  it("answers an unknown path on the probe port with a 404 that lists every page it serves, /debug/bus only when enabled", async () => {
    const res = await fetch(`${pods[0]!.probeUrl}/nope`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("not found: try /livez, /readyz, /metrics or /debug/bus\n");
    expect((await fetch(`${pods[0]!.probeUrl}/debug/bus`)).status).toBe(200);
    const without = await fetch(`${pods[1]!.probeUrl}/nope`);
    expect(await without.text()).toBe("not found: try /livez, /readyz or /metrics\n");
    expect((await fetch(`${pods[1]!.probeUrl}/debug/bus`)).status).toBe(404);
  });

  it("serves metrics that pass promtool check metrics, on every pod", async () => {
    for (const service of [...pods, notifier]) {
      const text = await (await fetch(`${service.probeUrl}/metrics`)).text();
      expect(promtoolCheck(text), `${service.pod}`).toBe("");
    }
  });

  it("has a Grafana dashboard whose queries name real metrics and run in Prometheus", async () => {
    const dashboard = JSON.parse(readFileSync(join(repoRoot, "docs/grafana-dashboard.json"), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const exposed = new Set<string>();
    for (const service of [...pods, notifier]) {
      const text = await (await fetch(`${service.probeUrl}/metrics`)).text();
      for (const m of text.matchAll(/^# TYPE (\S+) (\S+)/gm)) {
        exposed.add(m[1]!);
        if (m[2] === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) exposed.add(m[1]! + suffix);
      }
    }
    const titles = dashboard.panels.map((p) => p.title);
    for (const wanted of [/connections/i, /deliver/i, /latency/i, /rate-limited/i, /redis/i, /lag/i]) {
      expect(
        titles.some((t) => wanted.test(t)),
        `a panel for ${wanted}`,
      ).toBe(true);
    }
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        for (const name of expr.match(/\b(?:chat|notifier)_[a-z_]+/g) ?? []) expect(exposed, `${panel.title}: ${name}`).toContain(name);
        const runnable = expr.replaceAll("$namespace", ".*").replaceAll("$__rate_interval", "1m").replaceAll("$__range", "5m");
        await expect(prometheus.query(runnable)).resolves.toBeInstanceOf(Array);
      }
    }
  });
});
