// Turns a results JSON into the comparison table, docs/performance.md,
// docs/performance-latency.svg and (with a cost curve) docs/performance-curve.svg. Run alone to regenerate the docs from a saved run:
//   node bench/report.mjs [bench/results/latest.json]
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { curveSvg, scaleRows, scaleSections } from "./report-scale.mjs";

const root = fileURLToPath(new URL("../", import.meta.url));
const num = (v, d = 0) =>
  v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const ratio = (x) => (Number.isFinite(x) && x > 0 ? `${x.toFixed(2)}×` : "—");

/** Rows of the comparison: "chat advantage" > 1 means the chat is better. */
export function comparisonRows(r) {
  const c = r.chat ?? {};
  const b = r.baseline ?? {};
  const higher = (x, y) => (x !== undefined && y ? x / y : NaN);
  const lower = (x, y) => (x && y !== undefined ? y / x : NaN);
  const rows = [];
  const members = r.config.members;
  const lr = r.config.latencyRate;
  const er = r.config.efficiencyRate;
  if (c.capacity || b.capacity) {
    rows.push({
      scenario: `capacity: msg/s into ${members} members (p99 ≤ ${r.criteria.p99LimitMs} ms, 100% delivery)`,
      chat: num(c.capacity?.rate),
      baseline: num(b.capacity?.rate),
      ratio: ratio(higher(c.capacity?.rate, b.capacity?.rate)),
    });
    rows.push({
      scenario: "  = deliveries/s at capacity",
      chat: num(c.capacity?.deliveriesPerSecond),
      baseline: num(b.capacity?.deliveriesPerSecond),
      ratio: ratio(higher(c.capacity?.deliveriesPerSecond, b.capacity?.deliveriesPerSecond)),
    });
  }
  if (c.efficiency || b.efficiency) {
    rows.push({
      scenario: `efficiency: deliveries per server CPU-s @ ${er} msg/s (pods + Redis)`,
      chat: num(c.efficiency?.deliveriesPerCpuSecond),
      baseline: num(b.efficiency?.deliveriesPerCpuSecond),
      ratio: ratio(higher(c.efficiency?.deliveriesPerCpuSecond, b.efficiency?.deliveriesPerCpuSecond)),
    });
    rows.push({ scenario: `  server CPU-s for the run (chat pods / Redis)`, chat: cpuSplit(c.efficiency), baseline: cpuSplit(b.efficiency), ratio: "" });
  }
  if (c.latency || b.latency) {
    rows.push({
      scenario: `latency p50 @ ${lr} msg/s × ${members} (ms)`,
      chat: num(c.latency?.latency.p50, 2),
      baseline: num(b.latency?.latency.p50, 2),
      ratio: ratio(lower(c.latency?.latency.p50, b.latency?.latency.p50)),
    });
    rows.push({
      scenario: `latency p99 @ ${lr} msg/s × ${members} (ms)`,
      chat: num(c.latency?.latency.p99, 2),
      baseline: num(b.latency?.latency.p99, 2),
      ratio: ratio(lower(c.latency?.latency.p99, b.latency?.latency.p99)),
    });
    rows.push({
      scenario: `latency p99 @ ${er} msg/s × ${members} (ms)`,
      chat: num(c.efficiency?.latency.p99, 2),
      baseline: num(b.efficiency?.latency.p99, 2),
      ratio: ratio(lower(c.efficiency?.latency.p99, b.efficiency?.latency.p99)),
    });
  }
  if (c.memory || b.memory) {
    rows.push({
      scenario: `memory: KiB RSS per idle connection (${num(c.memory?.connections ?? b.memory?.connections)} on one pod)`,
      chat: num(c.memory?.kibPerConnection, 1),
      baseline: num(b.memory?.kibPerConnection, 1),
      ratio: ratio(lower(c.memory?.kibPerConnection, b.memory?.kibPerConnection)),
    });
  }
  if (c.notifier) {
    rows.push({ scenario: "notifier: events/s accepted (HTTP 202, 32 in flight)", chat: num(c.notifier.accepted.acceptedPerSecond), baseline: "—", ratio: "" });
    rows.push({
      scenario: `notifier: events/s delivered end to end to ${members} (p99 ≤ ${r.criteria.p99LimitMs} ms)`,
      chat: num(c.notifier.endToEnd.rate),
      baseline: "—",
      ratio: "",
    });
  }
  const jw = r.chatJwt;
  if (jw && c.latency) {
    const row = (label, open, jwt, better, d = 0) => ({
      scenario: `AUTH_MODE=jwt vs open (chat): ${label}`,
      chat: `${num(jwt, d)} (jwt)`,
      baseline: `${num(open, d)} (open)`,
      ratio: ratio(better(jwt, open)),
    });
    rows.push(row(`latency p50 @ ${lr} msg/s (ms)`, c.latency.latency.p50, jw.latency?.latency.p50, lower, 2));
    rows.push(row(`latency p99 @ ${lr} msg/s (ms)`, c.latency.latency.p99, jw.latency?.latency.p99, lower, 2));
    rows.push(row(`deliveries per server CPU-s @ ${er} msg/s`, c.efficiency?.deliveriesPerCpuSecond, jw.efficiency?.deliveriesPerCpuSecond, higher));
    rows.push(row("server CPU per connection handshake (µs)", c.setup?.connectCpuUsPerConnection, jw.setup?.connectCpuUsPerConnection, lower));
  }
  for (const row of r.rooms?.rows ?? []) {
    rows.push({
      scenario: `many rooms (${row.mode}): CPU µs per delivery / delivered`,
      chat: `${num(row.cpuPerDeliveryUs, 2)} / ${row.delivered === row.expected ? "100%" : `${row.delivered}/${row.expected}`}`,
      baseline: "n/a",
      ratio: "",
    });
  }
  const k = r.reliability?.podKill;
  if (k) {
    rows.push({
      scenario: `pod kill: all ${num(k.disconnects)} dropped clients back + caught up (ms after kill)`,
      chat: num(k.reconnectAllMs),
      baseline: "n/a",
      ratio: "",
    });
    rows.push({
      scenario: "pod kill: per-client reconnect p50 / max (ms)",
      chat: `${num(k.reconnectMs.p50)} / ${num(k.reconnectMs.max)}`,
      baseline: "n/a",
      ratio: "",
    });
    rows.push({ scenario: "pod kill: acked messages lost after recovery (goal 0)", chat: `${k.lostMessages} (${k.acked} acked)`, baseline: "n/a", ratio: "" });
  }
  const rr = r.reliability?.redisRestart;
  if (rr) {
    rows.push({
      scenario: "redis restart: outage (kill → up) / all clients re-synced after up (ms)",
      chat: `${num(rr.outageMs)} / ${num(rr.resyncAllMs)}`,
      baseline: "n/a",
      ratio: "",
    });
    rows.push({
      scenario: "redis restart: acked messages lost after recovery (goal 0)",
      chat: `${rr.lostMessages} (${rr.acked} acked)`,
      baseline: "n/a",
      ratio: "",
    });
  }
  rows.push(...scaleRows(r));
  return rows;
}

function cpuSplit(run) {
  if (!run) return "—";
  const pods = Object.entries(run.cpuPerProcess)
    .filter(([k]) => k !== "redis")
    .reduce((a, [, v]) => a + v, 0);
  return `${pods.toFixed(2)} / ${run.cpuPerProcess.redis.toFixed(2)}`;
}

// ---------------------------------------------------------------------------------------------
function points(side) {
  if (!side) return [];
  const runs = [side.latency, side.efficiency, ...(side.capacity?.steps ?? [])].filter(Boolean);
  const byRate = new Map();
  for (const run of runs) if (run.latency.p99 !== null && !byRate.has(run.rate)) byRate.set(run.rate, run);
  return [...byRate.values()].sort((a, b) => a.rate - b.rate).map((run) => ({ rate: run.rate, p50: run.latency.p50, p99: run.latency.p99, pass: run.pass }));
}

export function latencySvg(r) {
  const W = 760;
  const H = 420;
  const m = { l: 70, r: 180, t: 40, b: 55 };
  const series = [
    { name: "chat p99", pts: points(r.chat), key: "p99", color: "#c0392b", dash: "" },
    { name: "chat p50", pts: points(r.chat), key: "p50", color: "#c0392b", dash: "6 4" },
    { name: "baseline p99", pts: points(r.baseline), key: "p99", color: "#2471a3", dash: "" },
    { name: "baseline p50", pts: points(r.baseline), key: "p50", color: "#2471a3", dash: "6 4" },
  ];
  const all = series.flatMap((s) => s.pts);
  const maxRate = Math.max(10, ...all.map((p) => p.rate));
  const minMs = Math.min(...all.map((p) => p.p50).filter((v) => v > 0), 100);
  const yMin = [1, 2, 5, 10, 20, 50].reverse().find((v) => v <= minMs / 1.2) ?? 0.5;
  const yMax = Math.max(200, ...all.map((p) => p.p99)) * 1.2;
  const x = (rate) => m.l + ((W - m.l - m.r) * rate) / maxRate;
  const y = (ms) => m.t + (H - m.t - m.b) * (1 - (Math.log10(Math.max(yMin, ms)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${m.l}" y="22" font-size="14" font-weight="bold">Latency vs. message rate, one ${r.config.members}-member room, 3 processes + 1 Redis</text>`,
  );
  for (let e = Math.ceil(Math.log10(yMin)); 10 ** e <= yMax; e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v < yMin || v > yMax) continue;
      out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`);
      out.push(`<text x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
    }
  }
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].find((v) => maxRate / v <= 10) ?? 10_000;
  for (let v = 0; v <= maxRate; v += step) {
    out.push(`<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#f3f3f3"/>`);
    out.push(`<text x="${x(v).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${v}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(r.criteria.p99LimitMs)}" y2="${y(r.criteria.p99LimitMs)}" stroke="#888" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${W - m.r - 4}" y="${y(r.criteria.p99LimitMs) - 4}" text-anchor="end" fill="#666">p99 limit ${r.criteria.p99LimitMs} ms</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 14}" text-anchor="middle">messages per second (each delivered to ${r.config.members} members)</text>`);
  out.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`);
  series.forEach((s, i) => {
    if (!s.pts.length) return;
    const d = s.pts.map((p, j) => `${j ? "L" : "M"}${x(p.rate).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""}/>`);
    for (const p of s.pts)
      out.push(`<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p[s.key]).toFixed(1)}" r="3.5" fill="${p.pass ? s.color : "white"}" stroke="${s.color}"/>`);
    const ly = m.t + 10 + i * 20;
    out.push(
      `<line x1="${W - m.r + 14}" x2="${W - m.r + 44}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    out.push(`<text x="${W - m.r + 50}" y="${ly + 4}">${s.name}</text>`);
  });
  const ly = m.t + 10 + 4 * 20;
  out.push(`<circle cx="${W - m.r + 29}" cy="${ly}" r="3.5" fill="white" stroke="#333"/><text x="${W - m.r + 50}" y="${ly + 4}">failed step</text>`);
  out.push(`</svg>`);
  return out.join("\n");
}

function mdTable(header, rows) {
  return [`| ${header.join(" | ")} |`, `| ${header.map((_, i) => (i ? "---:" : "---")).join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function stepsTable(side) {
  const runs = side?.capacity?.steps ?? [];
  return mdTable(
    ["msg/s", "deliveries/s", "p50 ms", "p99 ms", "max ms", "delivered", "acked", "server CPU-s", "pass"],
    runs.map((s) => [
      s.rate,
      num(s.rate * s.members),
      num(s.latency.p50, 2),
      num(s.latency.p99, 2),
      num(s.latency.max, 1),
      `${(100 * s.deliveryRatio).toFixed(3)}%`,
      `${s.acked}/${s.sent}`,
      num(s.serverCpuSeconds, 2),
      s.pass ? "yes" : "**no**",
    ]),
  );
}

export function renderMarkdown(r) {
  const m = r.machine;
  const rows = comparisonRows(r);
  const k = r.reliability?.podKill;
  const rr = r.reliability?.redisRestart;
  const n = r.chat?.notifier;
  const cfg = r.config;
  let profile = "";
  const profilePath = join(root, "bench/results/profile-latest.json");
  if (existsSync(profilePath)) {
    const p = JSON.parse(readFileSync(profilePath, "utf8"));
    profile = [
      "",
      "### Where the chat pods spend their CPU",
      "",
      `\`npm run bench -- --profile\` runs the 3 pods under \`node --cpu-prof\` at ${p.rate ? `${p.rate} msg/s` : "the last measured capacity"} into ${num(p.members ?? r.config.members)} members` +
        `${p.seconds ? ` for ${p.seconds} s` : ""} and sums self time per function over the ${p.files} profiles, counting only the samples taken during that run` +
        ` (${num(p.busyMs)} ms busy, ${num(p.idleMs)} ms idle; the percentages are of the busy time)` +
        `${p.date ? `; profiled ${p.date.slice(0, 16).replace("T", " ")} UTC` : ""}${p.run ? `, p99 ${num(p.run.latency.p99, 1)} ms under the profiler` : ""}.`,
      "",
      mdTable(
        ["self %", "function", "where"],
        p.functions.slice(0, 15).map((f) => [`${f.pct.toFixed(1)}%`, `\`${f.name}\``, `\`${f.where}\``]),
      ),
      "",
      "By package:",
      "",
      mdTable(
        ["self %", "package"],
        p.packages.slice(0, 10).map((f) => [`${f.pct.toFixed(1)}%`, f.name]),
      ),
    ].join("\n");
  }
  return `# Performance

Generated by \`npm run bench${r.mode === "quick" ? " -- --quick" : ""}\` (${r.mode} mode, ${r.durationSeconds} s) from \`bench/results/latest.json\`;
regenerate this page from a saved run with \`node bench/report.mjs bench/results/<file>.json\`.

## Machine

| | |
| --- | --- |
| CPU | ${m.cpu} |
| cores | ${m.cores} |
| memory | ${m.memoryGiB} GiB |
| OS | ${m.os} |
| Node | ${m.node} |
| Redis | ${m.redis} |
| date | ${m.date} |

Everything ran on this one machine at once: Redis, the server processes and the load generator
share its ${m.cores} cores, so absolute numbers are low; the ratios are what this page is for.
${neighbours(r)}

## Chat vs. the baseline

The baseline is [\`bench/baseline-server.mjs\`](../bench/baseline-server.mjs): plain \`socket.io\` and
\`@socket.io/redis-adapter\` over ioredis, the same \`join\`/\`message\` events, acks and room fan-out,
and nothing else (no stored log, no presence, no validation, no metrics).

${limitsParagraph(r)}

"chat advantage" is chat/baseline for rates and efficiency and baseline/chat for latency and memory,
so **> 1 means the chat is better**; the issue's goal is ≥ 1.20, and ≥ 1.00 is the floor.

${mdTable(
  ["scenario", "chat", "baseline", "chat advantage"],
  rows.map((x) => [x.scenario.trim(), x.chat, x.baseline, x.ratio]),
)}

![latency against rate](performance-latency.svg)

Hollow markers are steps that failed (p99 over ${r.criteria.p99LimitMs} ms or delivery under 100%).

### Capacity steps: chat

${stepsTable(r.chat)}

### Capacity steps: baseline

${stepsTable(r.baseline)}
${
  n
    ? `
### Notifier

- **Accepted:** ${num(n.accepted.acceptedPerSecond)} events/s (HTTP 202) from a closed loop with ${n.accepted.concurrency} requests in flight for ${n.accepted.seconds} s into a room nobody is in (${JSON.stringify(n.accepted.statuses)}); the notifier process used ${n.accepted.notifierCpuSeconds} CPU-s.
- **Delivered end to end:** ${num(n.endToEnd.rate)} events/s into the ${cfg.members}-member room with p99 ≤ ${r.criteria.p99LimitMs} ms and 100% delivery (= ${num(n.endToEnd.deliveriesPerSecond)} deliveries/s), stepped like the chat's capacity:

${mdTable(
  ["events/s", "p50 ms", "p99 ms", "delivered", "accepted", "pass"],
  n.endToEnd.steps.map((s) => [
    s.rate,
    num(s.latency.p50, 2),
    num(s.latency.p99, 2),
    `${(100 * s.deliveryRatio).toFixed(3)}%`,
    `${s.acked}/${s.sent}`,
    s.pass ? "yes" : "**no**",
  ]),
)}
`
    : ""
}
${jwtSection(r)}${roomsSection(r)}${scaleSections(r)}${clusterSection(r)}
## Reliability (chat only; the baseline has no recovery)

${cfg.relClients} clients behind a TCP round-robin balancer (\`startBalancer\` from \`@chat/testkit\`) over 3 pods, all in one room,
${cfg.relRate} msg/s sent with a \`clientMsgId\` and retried on \`unavailable\`, a timeout or a disconnect. The clients reconnect
(100 ms back-off doubling to 1 s, ±50% jitter), re-join with \`since\` = the last id they hold, re-join on \`resync\` and on a
\`prev\` gap, and drop entries whose id is not greater than the last (live entries that arrive during a catch-up wait for it).
"Lost" counts messages that were acked but that some client still did not hold after recovery.
${
  k
    ? `
**Pod kill** (SIGKILL of 1 of the 3 pods, ${k.podClients ?? "?"} clients on it):

| | |
| --- | --- |
| clients dropped / reconnected and caught up | ${k.disconnects} / ${k.reconnected} |
| all of them back and caught up, after the kill | ${num(k.reconnectAllMs)} ms |
| per-client disconnect → caught up, p50 / p99 / max | ${num(k.reconnectMs.p50)} / ${num(k.reconnectMs.p99)} / ${num(k.reconnectMs.max)} ms |
| messages sent / acked / gave up | ${k.sent} / ${k.acked} / ${k.gaveUp} |
| retries | ${k.retries} |
| **acked messages lost after recovery** | **${k.lostMessages}** (${k.lostPairs} client×message pairs, ${k.clientsMissingSomething} clients) |
| duplicates dropped by id / gaps detected by \`prev\` | ${k.duplicatesDropped} / ${k.gapsDetected} |
`
    : ""
}${
    rr
      ? `
**Redis restart** (SIGKILL, restart after ${cfg.redisOutageMs} ms; AOF with \`appendfsync always\`):

| | |
| --- | --- |
| outage, kill → Redis answering again | ${num(rr.outageMs)} ms |
| first \`resync\` received, after Redis was up | ${num(rr.firstResyncMs)} ms |
| all ${rr.resyncs} clients re-synced (re-joined with \`since\`), after Redis was up | ${num(rr.resyncAllMs)} ms |
| messages sent / acked / gave up | ${rr.sent} / ${rr.acked} / ${rr.gaveUp} |
| \`unavailable\` acks during the outage / retries | ${rr.unavailableAcks} / ${rr.retries} |
| **acked messages lost after recovery** | **${rr.lostMessages}** (${rr.lostPairs} client×message pairs) |
| duplicates dropped by id / gaps detected by \`prev\` | ${rr.duplicatesDropped} / ${rr.gapsDetected} |
`
      : ""
  }
## Method

- \`npm run bench\` (full, about 8 min) or \`npm run bench -- --quick\` (< 2 min; no JWT comparison). Build first (\`npm run build\`): the bench runs \`services/*/dist\`.
  \`--only=chat,notifier,baseline,jwt,memory,kill,redis,rooms,curve,floor,storm,conns,cluster\` runs a subset (the docs are written only by a run of the default set;
  \`--quick\` leaves out jwt, floor, storm, conns and cluster; with \`--only\` it runs the storm with 600 clients and conns with 3000); \`--curve-deliveries=N\` sets the cost curve's deliveries/s (1000);
  \`--server-env=K=V,...\` adds environment to every server process (\`--chat-env\`: to the chat pods only) and \`--tag=NAME\` names the results file (an A/B run; it leaves latest.json and the docs alone);
  \`--profile\` runs the chat pods under \`--cpu-prof\` and prints the hotspots.
- Each side gets a fresh \`redis-server\` (\`startRedis\` from \`@chat/testkit\`, no persistence) and 3 processes:
  chat pods via \`startService("chat")\` with \`LOG_LEVEL=info\`, or 3 baseline servers. The capacity searches run one side after the other.
- The load generator is one child process (\`bench/loadgen.mjs\`) with raw \`ws\` clients that speak the Engine.IO v4 /
  Socket.IO v4 text framing by hand; its CPU is reported per run (\`loadgenCpuSeconds\` in the JSON) and is not counted as server CPU.
  The ${cfg.members} members are spread round-robin over the 3 processes; the senders are the first max(50, rate ÷ ${cfg.perSenderRate ?? 5}) of them, each a distinct user.
- A message's text carries its send time (\`performance.timeOrigin + performance.now()\`); latency is receive time − send time,
  per recipient, in a 0.05 ms histogram. Every delivery is counted per message; a step passes when every member got every
  message within the settle time (${cfg.settleMs} ms after the last send), every send was acked, and p99 ≤ ${r.criteria.p99LimitMs} ms.
- Capacity: steps of ${cfg.stepMs / 1000} s, doubling from ${cfg.startRate} msg/s until a step fails, then bisecting until the failing rate is within
  ${Math.round((cfg.resolution - 1) * 100)}% of the passing one; the capacity is the highest passing step. A step (or fixed run) during which other processes on the
  machine used more than a quarter of a core is repeated, twice at most (\`repeatedForNeighbour\` in the JSON).
- Efficiency: deliveries ÷ (utime + stime of the 3 server processes and redis-server, from \`/proc/<pid>/stat\`) over a
  ${cfg.fixedMs / 1000} s run at ${cfg.efficiencyRate} msg/s, settle included. Latency: a ${cfg.fixedMs / 1000} s run at ${cfg.latencyRate} msg/s.
  ${pairing(r)}
- Memory: VmRSS of one server process (with Redis) before and 2 s after opening ${cfg.memConns.toLocaleString("en-US")} idle connections
  (handshake done, no room joined)${r.mode === "quick" ? "; the full run uses 10 000" : ""}. RSS includes garbage not yet collected, so it is an upper bound.
  ${r.chat?.memory?.medianOf > 1 ? `Each side's figure is the median of ${r.chat.memory.medianOf} runs, alternated with the other side's (all in the JSON, \`runs\`).` : ""}
${profile}
${notes()}`;
}

/** How the latency and efficiency runs were made: paired and alternated (medians), or one each. */
function pairing(r) {
  const n = r.chat?.efficiency?.medianOf;
  if (!n) return "One run each, the chat's stack and the baseline's one after the other.";
  return `Both stacks were up together for these (the idle one costs only its heartbeats), and the runs alternated over ${n} rounds
  (chat, baseline, then baseline, chat, ...), so that the shared machine's drift falls on both sides alike; each figure is the
  median of its ${n} runs (all of them are in the JSON, \`runs\`).`;
}

/** Hand-written analysis kept beside the generator, so a re-run does not lose it. */
function notes() {
  const file = join(root, "bench/performance-notes.md");
  return existsSync(file) ? `\n${readFileSync(file, "utf8")}` : "";
}

/** How much CPU other processes on the machine took while the runs were measured. */
function neighbours(r) {
  const runs = ["chat", "baseline", "chatJwt"].flatMap((k) => {
    const side = r[k];
    return side ? [side.latency, side.efficiency, ...(side.capacity?.steps ?? []), ...(side.notifier?.endToEnd.steps ?? [])].filter(Boolean) : [];
  });
  if (!runs.length) return "";
  const other = runs.reduce((a, x) => a + (x.otherCpuSeconds ?? 0), 0);
  const wall = runs.reduce((a, x) => a + x.wallMs / 1000, 0);
  const repeated = runs.reduce((a, x) => a + (x.repeatedForNeighbour ?? 0), 0);
  return `Other processes on the machine (not the bench's) used ${other.toFixed(1)} CPU-s during the ${wall.toFixed(0)} s of measured runs,
${(other / wall).toFixed(2)} of a core on average${repeated ? `; ${repeated} runs were repeated because a neighbour was busy during them` : ""}.`;
}

function limitsParagraph(r) {
  const env = r.chat?.env ?? {};
  const extra = Object.entries(r.serverEnv ?? {}).map(([k, v]) => `\`${k}=${v}\``);
  return `**The chat ran with its defaults**: room history (every message appended to a Redis Stream and published by one script),
presence, Prometheus metrics, \`AUTH_MODE=${env.AUTH_MODE ?? "open"}\`, and the rate limits on: 10 messages/s per user
(+ a burst of 20 per 10 s), 120 joins/min per connection, 20 connections per user. The one exception is the per-address
connection limit, \`RATE_LIMIT_CONNECTIONS_PER_IP=0\`, since all the load comes from 127.0.0.1. The senders are distinct
users, each sending at most ${r.config.perSenderRate ?? 5} msg/s (at least 50 senders, more at higher rates), which keeps every run under the
per-user limit without raising it; the notifier keeps its 200 calls/s per API key and the bench spreads its calls over
${r.chat?.notifier?.accepted?.keys ?? 16} keys.${extra.length ? ` Extra environment of every server process in this run: ${extra.join(", ")}.` : ""}`;
}

function jwtSection(r) {
  const o = r.chat;
  const j = r.chatJwt;
  if (!j || !o) return "";
  const row = (label, a, b, d = 0) => [label, num(a, d), num(b, d)];
  return `## Authentication cost: \`AUTH_MODE=jwt\` vs \`open\`

The same ${num(r.config.members)}-member setup with \`AUTH_MODE=jwt\` (HS256, a 45-character \`JWT_SECRET\`; the load generator signs one token per
member with \`jose\`). A token is verified once, at the handshake; nothing is checked per message.

${mdTable(
  ["", "open", "jwt"],
  [
    row("server CPU per handshake (µs, 3 pods + Redis)", o.setup?.connectCpuUsPerConnection, j.setup?.connectCpuUsPerConnection),
    row(`latency p50 @ ${r.config.latencyRate} msg/s (ms)`, o.latency?.latency.p50, j.latency?.latency.p50, 2),
    row(`latency p99 @ ${r.config.latencyRate} msg/s (ms)`, o.latency?.latency.p99, j.latency?.latency.p99, 2),
    row(`deliveries per server CPU-s @ ${r.config.efficiencyRate} msg/s`, o.efficiency?.deliveriesPerCpuSecond, j.efficiency?.deliveriesPerCpuSecond),
    row(`latency p99 @ ${r.config.efficiencyRate} msg/s (ms)`, o.efficiency?.latency.p99, j.efficiency?.latency.p99, 2),
  ],
)}

`;
}

function roomsSection(r) {
  const rooms = r.rooms;
  if (!rooms) return "";
  const rows = rooms.rows ?? [];
  return `## Many rooms (issue 9)

From \`bench/many-rooms.mjs\` (\`runManyRooms\`), ${rooms.seconds ?? "?"} s.${rooms.error ? ` **It failed:** \`${rooms.error}\`.` : ""}

${
  rows.length
    ? mdTable(
        ["mode", "CPU µs per delivery", "bus messages per pod", "delivered / expected"],
        rows.map((x) => [
          x.mode,
          num(x.cpuPerDeliveryUs, 2),
          (x.busMessagesPerPod ?? []).map((n) => num(n)).join(" / "),
          `${num(x.delivered)} / ${num(x.expected)}`,
        ]),
      )
    : "(no rows)"
}
${rooms.notes ? `\n${rooms.notes}\n` : ""}
`;
}

function clusterSection(r) {
  const c = r.cluster;
  if (!c) return "";
  const rows = c.rows ?? [];
  return `## Many rooms on a Redis Cluster (issue 18)

From \`bench/cluster-spread.mjs\` (\`runClusterSpread\`), ${c.seconds ?? "?"} s.${c.error ? ` **It failed:** \`${c.error}\`.` : ""}${
    rows.length ? ` Delivered ${num(c.delivered)} / ${num(c.expected)} (${num(c.appends)} appends).` : ""
  }

${
  rows.length
    ? mdTable(
        ["master", "script calls", "XADD", "SPUBLISH", "every command", "share of the appends"],
        rows.map((x) => [x.master, num(x.scriptCalls), num(x.xadd), num(x.spublish), num(x.commands), `${x.sharePercent} %`]),
      )
    : "(no rows)"
}
${c.notes ? `\n${c.notes}\n` : ""}
`;
}

export function writeReport(results) {
  writeFileSync(join(root, "docs/performance-latency.svg"), latencySvg(results));
  if (results.curve?.shapes?.length) writeFileSync(join(root, "docs/performance-curve.svg"), curveSvg(results));
  writeFileSync(join(root, "docs/performance.md"), renderMarkdown(results));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] ?? join(root, "bench/results/latest.json");
  writeReport(JSON.parse(readFileSync(file, "utf8")));
  console.log(`docs/performance.md and docs/performance-latency.svg written from ${file}`);
}
