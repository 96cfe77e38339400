// docs/performance.md's part for issue 22's scenarios (cost curve, raw floor, reconnect storm,
// connections per pod) and docs/performance-curve.svg; used by bench/report.mjs.
const num = (v, d = 0) =>
  v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const ratio = (x) => (Number.isFinite(x) && x > 0 ? `${x.toFixed(2)}×` : "—");
const failed = (x) => (x?.error ? `**It failed:** \`${x.error}\`.` : "");

function mdTable(header, rows) {
  return [`| ${header.join(" | ")} |`, `| ${header.map((_, i) => (i ? "---:" : "---")).join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** Rows for the main comparison table ("chat advantage" > 1: the chat is better). */
export function scaleRows(r) {
  const rows = [];
  const f60 = r.floor?.rates?.find((x) => x.rate === 60);
  if (f60)
    rows.push({
      scenario: `efficiency: deliveries per server CPU-s @ 60 msg/s (floor scenario)`,
      chat: num(f60.chat.deliveriesPerCpuSecond),
      baseline: num(f60.baseline.deliveriesPerCpuSecond),
      ratio: ratio(f60.chatOfBaseline),
    });
  for (const x of r.floor?.rates ?? [])
    rows.push({
      scenario: `raw floor: chat's deliveries per CPU-s as a fraction of the floor's @ ${x.rate} msg/s`,
      chat: num(x.chatOfFloor, 2),
      baseline: num(x.floorOfBaseline ? 1 / x.floorOfBaseline : null, 2),
      ratio: "",
    });
  const dm = r.curve?.shapes?.find((s) => s.size === 2);
  if (dm?.chat && dm?.baseline)
    rows.push({
      scenario: `cost curve: CPU µs per delivery, ${dm.rooms} rooms of 2`,
      chat: num(dm.chat.cpuUsPerDelivery, 1),
      baseline: num(dm.baseline.cpuUsPerDelivery, 1),
      ratio: ratio(dm.baseline.cpuUsPerDelivery / dm.chat.cpuUsPerDelivery),
    });
  const s = r.storm;
  if (s?.chat?.dropped !== undefined && s?.baseline?.dropped !== undefined) {
    rows.push({
      scenario: `reconnect storm: all ${num(s.chat.dropped)} dropped clients back (ms after the kill; baseline: no catch-up)`,
      chat: num(s.chat.allBackMs),
      baseline: num(s.baseline.allBackMs),
      ratio: ratio(s.baseline.allBackMs / s.chat.allBackMs),
    });
    rows.push({
      scenario: "reconnect storm: p99 of live messages to undisturbed clients (ms)",
      chat: num(s.chat.calmLatency.p99, 1),
      baseline: num(s.baseline.calmLatency.p99, 1),
      ratio: ratio(s.baseline.calmLatency.p99 / s.chat.calmLatency.p99),
    });
  }
  const c = r.conns;
  if (c?.chat?.connections && c?.baseline?.connections)
    rows.push({
      scenario: `connections per pod: KiB RSS per idle connection (${num(c.chat.connections)}, chat with JWT)`,
      chat: num(c.chat.kibPerConnectionIdle, 1),
      baseline: num(c.baseline.kibPerConnectionIdle, 1),
      ratio: ratio(c.baseline.kibPerConnectionIdle / c.chat.kibPerConnectionIdle),
    });
  return rows;
}

// ---------------------------------------------------------------------------------------------
/** The sections of docs/performance.md for the scenarios that ran (empty for the others). */
export function scaleSections(r) {
  return [curveSection(r.curve), floorSection(r.floor), stormSection(r.storm), connsSection(r.conns)].filter(Boolean).join("\n");
}

function curveSection(c) {
  if (!c) return "";
  const side = (x) =>
    x
      ? [num(x.cpuUsPerDelivery, 1), num(x.podsCpuUsPerDelivery, 1), num(x.redisCpuUsPerMessage, 0), num(x.p99, 1), x.pass ? "yes" : "**no**"]
      : ["—", "—", "—", "—", "—"];
  return `## Cost curve: rooms from 1000 members down to 2 (issue 22)

The same ${num(c.deliveriesPerSecond)} deliveries per second, spread over 1 room of 1000, 10 of 100, 100 of 10 and 1000 rooms of 2
(DM-like), so the message rate is ${num(c.deliveriesPerSecond)} ÷ room size (1 to ${num(c.deliveriesPerSecond / 2)} msg/s). Each message goes to one room,
sent by its members in turn (round-robin over the 3 processes, so a room of 2 spans two of them). Both stacks are up together
and their runs alternate per shape, ${num(c.durationMs / 1000)} s each. CPU is the 3 server processes' and Redis's (from \`/proc\`) over the run
(send and settle), less what each process used idle with every client connected (measured for a few seconds before the runs;
\`grossCpuUsPerDelivery\` in the JSON keeps it in), read in 10 ms ticks;
"Redis µs per message" is Redis's CPU divided by the messages acked: the Redis work each message costs, which is what
dominates small rooms (the chat appends every message to its room's Stream and publishes it; the baseline only publishes).
${failed(c)}

${mdTable(
  [
    "rooms × members",
    "msg/s",
    "chat µs/delivery",
    "chat pods µs/delivery",
    "chat Redis µs/message",
    "chat p99 ms",
    "chat pass",
    "baseline µs/delivery",
    "baseline pods µs/delivery",
    "baseline Redis µs/message",
    "baseline p99 ms",
    "baseline pass",
  ],
  (c.shapes ?? []).map((x) => [`${x.rooms} × ${x.size}`, num(x.rate), ...side(x.chat), ...side(x.baseline)]),
)}

![cost per delivery against room size](performance-curve.svg)

Hollow markers are runs that failed (p99 over 100 ms, or a delivery missing).
`;
}

function floorSection(f) {
  if (!f) return "";
  return `## The raw floor (issue 22)

[\`bench/floor-server.mjs\`](../bench/floor-server.mjs) is what any Node chat could do on this topology: \`ws\` with just enough
Engine.IO/Socket.IO framing that \`socket.io-client\` connects and receives events, raw Redis pub/sub (a channel per room), and one
pre-encoded WebSocket frame per message written to every member's TCP socket (the frames of one Redis read coalesced per room).
No log, no presence, no validation, no rate limits, no metrics. The floor, the chat and the baseline are up together with
${num(f.members)} members each in one room; the runs alternate, ${f.rounds > 1 ? `${f.rounds} rounds` : "one run each"} of ${num(f.durationMs / 1000)} s per rate${f.rounds > 1 ? ", each figure the median" : ""}.
"Fraction of the floor" is the chat's (or the baseline's) deliveries per CPU-second divided by the floor's. A floor that falls
behind puts more frames in each write, so its figure rises with load: it is a fair floor only where its p99 is low.
${failed(f)}

${mdTable(
  ["msg/s × members", "floor deliveries/CPU-s", "chat", "baseline", "chat / floor", "baseline / floor", "chat / baseline", "p99 ms floor / chat / baseline"],
  (f.rates ?? []).map((x) => [
    `${x.rate} × ${num(f.members)}`,
    num(x.floor.deliveriesPerCpuSecond),
    num(x.chat.deliveriesPerCpuSecond),
    num(x.baseline.deliveriesPerCpuSecond),
    num(x.chatOfFloor, 2),
    num(x.floorOfBaseline ? 1 / x.floorOfBaseline : null, 2),
    num(x.chatOfBaseline, 2),
    `${num(x.floor.p99, 1)} / ${num(x.chat.p99, 1)} / ${num(x.baseline.p99, 1)}`,
  ]),
)}
`;
}

function stormSection(s) {
  if (!s) return "";
  const runs = [
    ["chat, open", s.chat],
    ["chat, AUTH_MODE=jwt", s.chatJwt],
    ["baseline", s.baseline],
  ].filter(([, x]) => x);
  const any = runs.find(([, x]) => x.clients)?.[1];
  const col = (fn) => runs.map(([, x]) => (x.error ? "failed" : fn(x)));
  return `## Reconnect storm (issue 22)

${any ? `${num(any.clients)} clients in ${any.rooms} rooms of ${any.roomSize}, ${any.ratePerRoom} msg/s in every room, behind a TCP round-robin balancer over 3 pods; then SIGKILL of one pod.` : ""}
The chat's clients are \`@chat/client\` (socket.io-client underneath: it reconnects, re-joins every room with \`since\` and catches up;
"back" is its \`status\` event turning true, all rooms re-synced); the baseline's are plain \`socket.io-client\`, which reconnects and
re-joins (here, on every connect) but cannot catch up, so what its dropped clients missed is lost. Sends go through the client
(\`send()\`, retried with a \`clientMsgId\`; the baseline's \`emitWithAck\` with a 10 s timeout); only acked messages are counted.
"Survivors' CPU" is the 2 remaining pods' CPU from the kill until the last dropped client was back, over that time; "per
reconnect" adds Redis's CPU and divides by the clients dropped. "Undisturbed p99" is the latency of live messages whose sender
and recipient both stayed connected, received during the storm. "Lost" counts acked messages some client of the room never got.
${runs.map(([name, x]) => (x.error ? `\n**${name} failed:** \`${x.error}\`.` : "")).join("")}

${mdTable(
  ["", ...runs.map(([name]) => name)],
  [
    ["server CPU per handshake, initial connect (µs, 3 pods + Redis)", ...col((x) => num(x.handshakeCpuUs))],
    ["clients on the killed pod / dropped / back", ...col((x) => `${x.onVictim} / ${x.dropped} / ${x.back}`)],
    ["all back, after the kill (ms)", ...col((x) => num(x.allBackMs) + (x.timedOut ? " (timed out)" : ""))],
    ["per client: back after the kill, p50 / p99 (ms)", ...col((x) => `${num(x.backMs.p50)} / ${num(x.backMs.p99)}`)],
    ["survivors' CPU during the storm (cores, 2 pods)", ...col((x) => num(x.survivorsCores, 2))],
    ["survivors' + Redis CPU per reconnect (µs)", ...col((x) => num(x.survivorsCpuUsPerReconnect))],
    ["the clients' process meanwhile (cores; one process for all the clients)", ...col((x) => num(x.clientsCores, 2))],
    ["undisturbed clients' p99 during the storm (ms)", ...col((x) => `${num(x.calmLatency.p99, 1)} (${num(x.calmLatency.count)} deliveries)`)],
    ["messages sent / acked", ...col((x) => `${num(x.sent)} / ${num(x.acked)}`)],
    ["**acked messages lost** (client × message pairs)", ...col((x) => `**${num(x.lostMessages)}** (${num(x.lostPairs)})`)],
    [
      "failures (`rate_limited` handshakes, timeouts, ...)",
      ...col((x) =>
        Object.keys(x.failures ?? {}).length
          ? Object.entries(x.failures)
              .map(([k, v]) => `${k}: ${v}`)
              .join(", ")
          : "none",
      ),
    ],
  ],
)}
`;
}

function connsSection(c) {
  if (!c) return "";
  const runs = [
    ["chat (AUTH_MODE=jwt)", c.chat],
    ["baseline (no auth)", c.baseline],
  ].filter(([, x]) => x);
  const col = (fn) => runs.map(([, x]) => (x.error ? "failed" : fn(x)));
  const eld = (e) => (e ? `${num(e.p50, 1)} / ${num(e.p99, 1)} / ${num(e.max, 1)}` : "—");
  return `## Connections per pod (issue 22)

Idle connections on one pod (the chat with \`AUTH_MODE=jwt\`, each client with its own token), from 4 source addresses; then 5% of
them join rooms of 50, with 2 msg/s in each room. RSS is the pod's VmRSS before, once idle, and after the active run (garbage
not yet collected included: an upper bound). The event-loop delay is Node's \`monitorEventLoopDelay\` at a 100 ms resolution,
less the interval (the delay past each sample: an idle loop reads about 0): the chat's \`nodejs_eventloop_lag_*\` on
\`/metrics\`, the baseline's from the same monitor behind its \`BENCH_ELD=1\` hook.
Centrifugo publishes about 27 KB per connection by default and about 11 KB tuned.
${runs.map(([name, x]) => (x.error ? `\n**${name} failed:** \`${x.error}\`.` : "")).join("")}

${mdTable(
  ["", ...runs.map(([name]) => name)],
  [
    ["idle connections", ...col((x) => num(x.connections) + (x.target > x.connections ? ` (of ${num(x.target)}: the open-files limit)` : ""))],
    ["RSS before / idle / active (MiB)", ...col((x) => `${num(x.rssBeforeKiB / 1024, 0)} / ${num(x.rssIdleKiB / 1024, 0)} / ${num(x.rssActiveKiB / 1024, 0)}`)],
    ["**KiB RSS per idle connection**", ...col((x) => `**${num(x.kibPerConnectionIdle, 1)}**`)],
    ["KiB RSS per connection, 5% active", ...col((x) => num(x.kibPerConnectionActive, 1))],
    ["event-loop delay idle, p50 / p99 / max (ms)", ...col((x) => eld(x.idleEventLoopDelayMs))],
    ["active: members / rooms / msg/s", ...col((x) => `${num(x.active.members)} / ${x.active.rooms} / ${x.active.rate}`)],
    ["event-loop delay active, p50 / p99 / max (ms)", ...col((x) => eld(x.activeEventLoopDelayMs))],
    ["active messages' p99 (ms) / delivered", ...col((x) => `${num(x.active.latency.p99, 1)} / ${(100 * x.active.deliveryRatio).toFixed(2)}%`)],
  ],
)}
`;
}

// ---------------------------------------------------------------------------------------------
/** A log-log panel: x = members per room, y = the series' values. */
function panel(out, { x0, y0, w, h, title, unit, series, sizes }) {
  const values = series.flatMap((s) => s.pts.map((p) => p.v)).filter((v) => v > 0);
  if (!values.length) return;
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values) * 1.05));
  const lx = (size) => Math.log10(size);
  const [minX, maxX] = [lx(Math.min(...sizes)), lx(Math.max(...sizes))];
  const x = (size) => x0 + 20 + ((w - 40) * (lx(size) - minX)) / (maxX - minX || 1);
  const y = (v) => y0 + h - (h * (Math.log10(Math.max(lo, v)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  out.push(`<text x="${x0}" y="${y0 - 10}" font-weight="bold">${title}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#333"/>`);
  for (let e = Math.log10(lo); e <= Math.log10(hi); e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v < lo || v > hi) continue;
      out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`);
      out.push(`<text x="${x0 - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
    }
  }
  for (const size of sizes) out.push(`<text x="${x(size).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle">${size}</text>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle">members per room (same deliveries/s)</text>`);
  out.push(`<text transform="translate(${x0 - 48} ${y0 + h / 2}) rotate(-90)" text-anchor="middle">${unit} (log scale)</text>`);
  for (const s of series) {
    const pts = s.pts.filter((p) => p.v > 0);
    if (!pts.length) continue;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p.size).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""}/>`);
    for (const p of pts)
      out.push(`<circle cx="${x(p.size).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3.5" fill="${p.pass === false ? "white" : s.color}" stroke="${s.color}"/>`);
  }
}

/** docs/performance-curve.svg: CPU per delivery (total and Redis's part) and p99, chat and baseline, per room size. */
export function curveSvg(r) {
  const shapes = r.curve?.shapes ?? [];
  const sizes = shapes.map((s) => s.size);
  const pts = (kind, key) => shapes.map((s) => ({ size: s.size, v: s[kind]?.[key], pass: s[kind]?.pass }));
  const W = 960;
  const H = 400;
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`];
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="20" y="22" font-size="14" font-weight="bold">Cost curve: ${num(r.curve?.deliveriesPerSecond)} deliveries/s over rooms of 1000, 100, 10 and 2, 3 processes + 1 Redis</text>`,
  );
  const chat = "#c0392b";
  const base = "#2471a3";
  panel(out, {
    x0: 80,
    y0: 70,
    w: 320,
    h: 250,
    title: "server CPU µs per delivery",
    unit: "µs",
    sizes,
    series: [
      { pts: pts("chat", "cpuUsPerDelivery"), color: chat },
      { pts: pts("chat", "redisCpuUsPerDelivery"), color: chat, dash: "6 4" },
      { pts: pts("baseline", "cpuUsPerDelivery"), color: base },
      { pts: pts("baseline", "redisCpuUsPerDelivery"), color: base, dash: "6 4" },
    ],
  });
  panel(out, {
    x0: 500,
    y0: 70,
    w: 250,
    h: 250,
    title: "latency p99",
    unit: "ms",
    sizes,
    series: [
      { pts: pts("chat", "p99"), color: chat },
      { pts: pts("baseline", "p99"), color: base },
    ],
  });
  const legend = [
    ["chat: pods + Redis", chat, ""],
    ["chat: Redis's part", chat, "6 4"],
    ["baseline: pods + Redis", base, ""],
    ["baseline: Redis's part", base, "6 4"],
  ];
  legend.forEach(([name, color, dash], i) => {
    const ly = 90 + i * 20;
    out.push(`<line x1="765" x2="790" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""}/>`);
    out.push(`<text x="795" y="${ly + 4}" font-size="11">${name}</text>`);
  });
  out.push(`<circle cx="777" cy="170" r="3.5" fill="white" stroke="#333"/><text x="795" y="174" font-size="11">failed run</text>`);
  out.push(`</svg>`);
  return out.join("\n");
}
