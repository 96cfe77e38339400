import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  metricValue,
  repoRoot,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";
import type { Redis } from "ioredis";
import { endpointId } from "../src/webhook-delivery.js";
import { signature, verifySignature } from "../src/webhook-sign.js";
import { API_KEY, joinRoom, redisClient, startNotifier } from "./helpers.js";
import { startReceiver, type Receiver } from "./webhook-receiver.js";

const SECRET = "current-secret-0123456789";
const OLD_SECRET = "previous-secret-0123456789";
const ROUNDS = 10;

type StreamEntry = [string, string[]];
const fieldOf = (fields: string[], name: string) => {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
};

describe("webhooks across 3 chat pods and 2 notifiers, to a receiver that fails, hangs and goes down", () => {
  let redis: RedisServer;
  let client: Redis;
  let pods: ServiceProcess[];
  let notifiers: ServiceProcess[];
  let receiver: Receiver;
  /** `/gone` answers 410 (never retried) until the test fixes it. */
  let goneFixed = false;

  beforeAll(async () => {
    receiver = await startReceiver((path, n) => {
      if (path === "/gone") return goneFixed ? 200 : 410;
      if (n % 3 === 0) return 500;
      if (n % 10 === 4) return "hang";
      return 200;
    });
    redis = await startRedis();
    client = redisClient(redis.url);
    const webhookEnv = {
      WEBHOOK_URLS: `${receiver.url}/hook,${receiver.url}/gone`,
      WEBHOOK_SECRET: `${SECRET},${OLD_SECRET}`,
      WEBHOOK_EVENTS: "room.occupied,room.vacated,member.joined,member.left,message.created,message.deleted",
      WEBHOOK_TIMEOUT_MS: "1000",
      WEBHOOK_RETRY_BASE_MS: "100",
      WEBHOOK_RETRY_MAX_MS: "1000",
      WEBHOOK_MAX_ATTEMPTS: "60",
    };
    // The notifiers first: they tell the pods which events to add.
    notifiers = await Promise.all([startNotifier(redis.url, webhookEnv, "notifier-a"), startNotifier(redis.url, webhookEnv, "notifier-b")]);
    const env = { REDIS_URL: redis.url, RATE_LIMIT_EVENTS_PER_SECOND: "0", QUOTA_USER_BYTES: "0", QUOTA_ROOM_BYTES: "0", QUOTA_TOTAL_BYTES: "0" };
    pods = await Promise.all(["chat-a", "chat-b", "chat-c"].map((pod) => startService("chat", { env, pod })));
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    client?.disconnect();
    await receiver?.close();
    await redis?.dispose();
  });

  /** Every event the stream holds, oldest first, with the id a receiver sees. */
  async function streamEvents(): Promise<{ id: string; type: string; room: string }[]> {
    const entries = (await client.xrange("chat:webhooks", "-", "+")) as StreamEntry[];
    return entries
      .filter(([, f]) => fieldOf(f, "only") === undefined)
      .map(([id, f]) => ({ id: `evt_${id}`, type: fieldOf(f, "type")!, room: fieldOf(f, "room")! }));
  }

  const at = (path: string) => receiver.received.filter((r) => r.path === path);

  /** Waits until /hook has had every event the stream holds so far. */
  async function allDelivered(timeoutMs: number): Promise<void> {
    const wanted = (await streamEvents()).map((e) => e.id);
    let missing = wanted.length;
    await waitFor(
      () => {
        const seen = new Set(at("/hook").flatMap((r) => r.events.map((e) => e.id)));
        missing = wanted.filter((id) => !seen.has(id)).length;
        return missing === 0;
      },
      { timeoutMs, intervalMs: 100, what: () => `all ${wanted.length} events at /hook (${missing} missing)` },
    );
  }

  it("delivers every event at least once, signed, in order per room, with occupied/vacated exact under concurrent joins on 3 pods, through 500s, timeouts, a 5 s outage and a killed notifier", async () => {
    const users: Socket[] = await Promise.all(pods.map((pod, i) => connectClient(pod.url, `member-${i}`)));
    let outage: Promise<void> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      // Each round waits for the last one's events, so that they travel in many requests (some
      // failing), except while the receiver is down (rounds 3 and 4).
      if (round !== 4 && round !== 5) await allDelivered(60_000);
      if (round === 3) outage = receiver.goDown(5000);
      if (round === 5) await outage;
      if (round === 7) {
        // Kill the notifier delivering to /hook, mid-stream: the other takes over its batch.
        const holder = await client.get(`chat:webhooks:lease:${endpointId(`${receiver.url}/hook`)}`);
        const victim = notifiers.find((n) => holder?.startsWith(`${n.pod}-`));
        expect(victim).toBeDefined();
        await victim!.kill("SIGKILL");
        notifiers = notifiers.filter((n) => n !== victim);
      }
      await Promise.all(users.map((socket) => joinRoom(socket, "busy")));
      await Promise.all(users.map((socket, i) => socket.emitWithAck("message", { room: "busy", text: `round ${round} from ${i}\u202E` })));
      await Promise.all(users.map((socket) => socket.emitWithAck("leave", { room: "busy" })));
    }
    await allDelivered(90_000);
    const expected = await streamEvents();

    // Signed with the current secret, and verifiable with the previous one too (a rotation).
    for (const request of receiver.received) {
      expect(verifySignature(request.signature, request.body, SECRET)).toBe(true);
      expect(verifySignature(request.signature, request.body, OLD_SECRET)).toBe(true);
      expect(verifySignature(request.signature, `${request.body} `, SECRET)).toBe(false);
    }
    // A duplicate is the same event: same id, same content.
    const byId = new Map<string, string>();
    for (const event of at("/hook").flatMap((r) => r.events)) {
      const content = JSON.stringify(event);
      expect(byId.get(event.id) ?? content).toBe(content);
      byId.set(event.id, content);
    }
    // In order per room: the first arrival of each event follows the stream.
    const firstSeen: string[] = [];
    for (const event of at("/hook").flatMap((r) => r.events)) if (!firstSeen.includes(event.id)) firstSeen.push(event.id);
    for (const room of new Set(expected.map((e) => e.room))) {
      const inStream = expected.filter((e) => e.room === room).map((e) => e.id);
      expect(firstSeen.filter((id) => inStream.includes(id))).toEqual(inStream);
    }
    // Occupied and vacated alternate, one pair per round, however the 3 pods raced.
    const busy = expected.filter((e) => e.room === "busy");
    expect(busy.filter((e) => e.type.startsWith("room.")).map((e) => e.type)).toEqual(
      Array.from({ length: ROUNDS }, () => ["room.occupied", "room.vacated"]).flat(),
    );
    expect(busy.filter((e) => e.type === "member.joined")).toHaveLength(3 * ROUNDS);
    expect(busy.filter((e) => e.type === "member.left")).toHaveLength(3 * ROUNDS);
    expect(busy.filter((e) => e.type === "message.created")).toHaveLength(3 * ROUNDS);
    // The text as stored: the bidi override the senders added is not in it.
    const texts = at("/hook").flatMap((r) => r.events.filter((e) => e.type === "message.created").map((e) => e.data.text as string));
    expect(texts.length).toBeGreaterThanOrEqual(3 * ROUNDS);
    expect(texts.every((text) => /^round \d+ from \d$/.test(text))).toBe(true);
    // The receiver's failures were real: some requests were retried.
    expect(at("/hook").length).toBeGreaterThan(new Set(at("/hook").map((r) => r.idempotencyKey)).size);
    // The surviving notifier took over the delivery after the kill.
    expect(await metricValue(notifiers[0]!, 'notifier_webhook_events_total{result="delivered"}')).toBeGreaterThan(0);
  }, 240_000);

  it("dead-letters what an endpoint refuses, and replays it to that endpoint alone with the original ids", async () => {
    const deadLetters = async () =>
      ((await client.xrange("chat:webhooks:dead", "-", "+")) as StreamEntry[]).map(([, f]) => ({
        url: fieldOf(f, "url"),
        id: fieldOf(f, "id")!,
        reason: fieldOf(f, "reason"),
      }));
    // Letters from the test before (tries run out during the receiver's outage) may already be
    // there: wait for /gone's own refusal, not for the stream to be non-empty.
    await waitFor(async () => (await deadLetters()).some((d) => d.reason === "HTTP 410"), { timeoutMs: 30_000, what: "/gone's 410 dead-lettered" });
    const dead = await deadLetters();
    // Only /gone refuses; its letters say why (a 410, or the tries it ran out of while the receiver
    // was down in the test before).
    expect(dead.every((d) => d.url === `${receiver.url}/gone`)).toBe(true);
    expect(dead.some((d) => d.reason === "HTTP 410")).toBe(true);
    const hookCounts = () => at("/hook").flatMap((r) => r.events.map((e) => e.id)).length;
    // Retries for /hook from the tests before (its receiver failed, hung and went down) may still be
    // on their way: count once its consumer group has read everything and has nothing pending.
    const hookGroup = `webhooks:${endpointId(`${receiver.url}/hook`)}`;
    await waitFor(
      async () => {
        const groups = (await client.xinfo("GROUPS", "chat:webhooks")) as unknown[][];
        const fields = groups.map((g) => Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [String(g[2 * i]), g[2 * i + 1]])));
        const mine = fields.find((g) => g.name === hookGroup);
        return mine !== undefined && mine.pending === 0 && mine.lag === 0;
      },
      { timeoutMs: 30_000, what: "/hook's deliveries settled" },
    );
    const before = hookCounts();

    goneFixed = true;
    const response = await fetch(`${notifiers[0]!.url}/v1/webhooks/replay`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ url: `${receiver.url}/gone`, limit: 1000 }),
    });
    const body = (await response.json()) as { replayed: number };
    expect(response.status).toBe(200);
    expect(body.replayed).toBeGreaterThanOrEqual(dead.length);
    const replayedIds = new Set(dead.map((d) => d.id));
    await waitFor(
      () => {
        const got = new Set(
          at("/gone")
            .filter((r) => r.events.length && goneFixed)
            .flatMap((r) => r.events.map((e) => e.id)),
        );
        return [...replayedIds].every((id) => got.has(id));
      },
      { timeoutMs: 30_000, what: "the replayed events at /gone" },
    );
    // /hook had them already: the replay was for /gone only.
    expect(hookCounts()).toBe(before);
  });

  it("accepts the notifier's real requests with the Python snippet of docs/server-api.md, and refuses a changed body or an old timestamp", () => {
    const page = readFileSync(join(repoRoot, "docs/server-api.md"), "utf8");
    const snippet = /```python\n([\s\S]*?)```/.exec(page)?.[1];
    expect(snippet).toBeDefined();
    const check = (header: string, body: string) =>
      spawnSync("python3", ["-c", `${snippet}\nimport os, sys\nprint(verify(os.environ["HEADER"], sys.stdin.buffer.read(), os.environ["SECRET"]))`], {
        input: body,
        env: { ...process.env, HEADER: header, SECRET: OLD_SECRET },
        encoding: "utf8",
      }).stdout.trim();
    const request = receiver.received.at(-1)!;
    expect(check(request.signature, request.body)).toBe("True");
    expect(check(request.signature, request.body.replace("}", " }"))).toBe("False");
    // Correctly signed, an hour ago: a replay.
    const now = Math.floor(Date.now() / 1000);
    expect(check(signature(request.body, [OLD_SECRET], now - 3600), request.body)).toBe("False");
    expect(check(signature(request.body, [OLD_SECRET], now - 60), request.body)).toBe("True");
  });
});
