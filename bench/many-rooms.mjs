// Issue 9's scenario: 50 rooms of 20 members over 3 chat pods, messages in every room, in classic
// and in sharded bus mode. For each mode: the server CPU (3 chat processes + Redis, from
// /proc/<pid>/stat) per delivery, and how many messages each pod read from Redis (its
// chat_bus_messages_received_total). Needs a build (`npm run build`) and redis-server on PATH.
//
//   node bench/many-rooms.mjs [--quick] [--layout=pinned|spread]
//
// `pinned` (the default, the issue's case): each room's members are all on one pod, rooms spread
// evenly over the pods. `spread`: each room's members round-robin over the 3 pods, so every pod
// serves every room and sharding has nothing to save: the price of its bookkeeping shows.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { closeAllClients, connectClient, metricValue, startRedis, startService, stopAllServices, waitFor } from "@chat/testkit";

const ROOMS = 50;
const MEMBERS = 20;
const PODS = 3;
const MODES = ["classic", "sharded"];

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds a process has used so far. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Runs `tasks` (functions returning promises) `width` at a time. */
async function inBatches(tasks, width) {
  const results = [];
  for (let i = 0; i < tasks.length; i += width) results.push(...(await Promise.all(tasks.slice(i, i + width).map((task) => task()))));
  return results;
}

async function runMode(mode, { messages, layout }) {
  const redis = await startRedis();
  const db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    // Default limits: a member sends one message in 20 of its room's, well inside 10/s per user.
    const env = { REDIS_URL: redis.url, BUS_MODE: mode, LOG_LEVEL: "info" };
    const pods = await Promise.all(Array.from({ length: PODS }, (_, i) => startService("chat", { pod: `rooms-${mode}-${i}`, env })));
    const redisPid = Number(/process_id:(\d+)/.exec(await db.info("server"))[1]);
    const podOf = (room, member) => (layout === "pinned" ? room % PODS : (room * MEMBERS + member) % PODS);

    let delivered = 0;
    const members = await inBatches(
      Array.from({ length: ROOMS * MEMBERS }, (_, i) => async () => {
        const [room, member] = [Math.floor(i / MEMBERS), i % MEMBERS];
        const socket = await connectClient(pods[podOf(room, member)].url, `r${room}-m${member}`);
        socket.on("message", () => delivered++);
        const ack = await socket.emitWithAck("join", { room: `room-${room}` });
        if (!ack.ok) throw new Error(`join: ${ack.error.message}`);
        return { socket, room, member };
      }),
      100,
    );
    const roomMembers = Array.from({ length: ROOMS }, (_, room) => members.filter((m) => m.room === room).map((m) => m.socket));
    const send = async (socket, room, text) => {
      const ack = await socket.emitWithAck("message", { room: `room-${room}`, text });
      if (!ack.ok) throw new Error(`message: ${ack.error.message}`);
    };

    // A first message in every room settles the joins' presence traffic (Redis delivers in
    // publish order), so the counters and CPU read next start from a quiet bus.
    await Promise.all(roomMembers.map((sockets, room) => send(sockets[0], room, "warm-up")));
    await waitFor(() => delivered >= ROOMS * MEMBERS, { timeoutMs: 60_000, what: "the warm-up messages" });
    delivered = 0;

    const pids = [...pods.map((pod) => pod.child.pid), redisPid];
    const cpuBefore = pids.map(cpuSeconds);
    const busBefore = await Promise.all(pods.map((pod) => metricValue(pod, "chat_bus_messages_received_total")));
    const started = Date.now();
    // Every room at once; within a room one member after the other, each sending one message.
    await Promise.all(
      roomMembers.map(async (sockets, room) => {
        for (let i = 0; i < messages; i++) await send(sockets[i % MEMBERS], room, `message ${i}`);
      }),
    );
    const expected = ROOMS * messages * MEMBERS;
    await waitFor(() => delivered >= expected, { timeoutMs: 120_000, what: () => `${expected} deliveries (got ${delivered})` });
    const seconds = (Date.now() - started) / 1000;
    const cpu = pids.map((pid, i) => cpuSeconds(pid) - cpuBefore[i]);
    const busAfter = await Promise.all(pods.map((pod) => metricValue(pod, "chat_bus_messages_received_total")));
    const total = cpu.reduce((a, b) => a + b, 0);
    return {
      mode,
      cpuPerDeliveryUs: Math.round(((total * 1e6) / delivered) * 100) / 100,
      busMessagesPerPod: busAfter.map((after, i) => after - busBefore[i]),
      delivered,
      expected,
      chatCpuSeconds: Math.round(cpu.slice(0, PODS).reduce((a, b) => a + b, 0) * 100) / 100,
      redisCpuSeconds: Math.round(cpu[PODS] * 100) / 100,
      seconds: Math.round(seconds * 100) / 100,
    };
  } finally {
    closeAllClients();
    await stopAllServices();
    db.disconnect();
    await redis.dispose();
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Runs the scenario in classic and in sharded mode, each run on a fresh Redis and fresh pods.
 * Full: 60 messages per room, 3 runs per mode taken in turns, and the median CPU per delivery
 * (a run is a few seconds, so one busy neighbour would otherwise decide). Quick: 10 messages
 * per room, one run each.
 */
export async function runManyRooms({ quick = false, layout = "pinned" } = {}) {
  const messages = quick ? 10 : 60;
  const repeats = quick ? 1 : 3;
  const runs = Object.fromEntries(MODES.map((mode) => [mode, []]));
  for (let i = 0; i < repeats; i++) for (const mode of MODES) runs[mode].push(await runMode(mode, { messages, layout }));
  const rows = MODES.map((mode) => {
    const all = runs[mode];
    const mid = all.find((run) => run.cpuPerDeliveryUs === median(all.map((r) => r.cpuPerDeliveryUs)));
    return { ...mid, runsCpuPerDeliveryUs: all.map((run) => run.cpuPerDeliveryUs) };
  });
  const notes =
    `${ROOMS} rooms of ${MEMBERS} members over ${PODS} pods (${layout === "pinned" ? "each room's members on one pod" : "each room's members spread over every pod"}), ` +
    `${messages} messages per room, all rooms at once${repeats > 1 ? `; the median of ${repeats} runs per mode` : ""}. CPU is user + system ` +
    `time of the 3 chat processes and redis-server (from /proc/<pid>/stat, ${1000 / CLK_TCK} ms ticks) while the messages were sent and ` +
    `delivered; bus messages are each pod's chat_bus_messages_received_total over the same time. A delivery is a message reaching ` +
    `one member's socket. Sharded mode saves each pod the rooms it does not serve; most of the CPU is the delivery to sockets itself.`;
  return { rows, notes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const layout = process.argv.find((arg) => arg.startsWith("--layout="))?.slice("--layout=".length) ?? "pinned";
  if (!["pinned", "spread"].includes(layout)) throw new Error("--layout must be pinned or spread");
  const { rows, notes } = await runManyRooms({ quick, layout });
  console.table(
    rows.map((r) => ({
      mode: r.mode,
      "CPU µs/delivery": r.cpuPerDeliveryUs,
      "bus messages per pod": r.busMessagesPerPod.join(" / "),
      delivered: `${r.delivered}/${r.expected}`,
      "chat CPU s": r.chatCpuSeconds,
      "redis CPU s": r.redisCpuSeconds,
      seconds: r.seconds,
      runs: (r.runsCpuPerDeliveryUs ?? []).join(", "),
    })),
  );
  console.log(notes);
  process.exit(0);
}
