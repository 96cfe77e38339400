import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { parse } from "yaml";
import type { Ack, ChatMessage, Notification } from "@chat/shared";
import {
  closeAllClients,
  connectClient,
  record,
  repoRoot,
  startRedis,
  startService,
  stopAllServices,
  waitFor,
  type RedisServer,
  type ServiceProcess,
} from "@chat/testkit";

// The chart's ACL users (charts/chat/values.yaml redis.acl, rendered by templates/_secrets.tpl's
// chat.redis.aclArgs into redis-server's --user arguments): the services' user with the chart's
// own rules, and the producers' user that may only XADD to the notifier's stream.
const values = parse(readFileSync(join(repoRoot, "charts/chat/values.yaml"), "utf8")) as {
  redis: { acl: { serviceUser: string; serviceRules: string; producerUser: string } };
  notifier: { stream: string };
};
const { serviceUser, serviceRules, producerUser } = values.redis.acl;
const STREAM = values.notifier.stream;
const ADMIN_PASSWORD = "admin-password-0123456789abcdef";
const SERVICE_PASSWORD = "service-password-0123456789abcd";
const PRODUCER_PASSWORD = "producer-password-0123456789ab";
const API_KEY = "acl-test-key-0123456789abcdef";

describe("the chart's Redis ACL users", () => {
  let redis: RedisServer;
  let url: string;
  let chatA: ServiceProcess;
  let chatB: ServiceProcess;
  let notifier: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis({
      password: ADMIN_PASSWORD,
      args: [
        // DEBUG on, so that it is the ACL, not the server's default, that refuses it below.
        "--enable-debug-command",
        "yes",
        "--user",
        serviceUser,
        "on",
        `>${SERVICE_PASSWORD}`,
        ...serviceRules.split(" ").filter(Boolean),
        "--user",
        producerUser,
        "on",
        `>${PRODUCER_PASSWORD}`,
        "resetchannels",
        "-@all",
        "+xadd",
        `~${STREAM}`,
      ],
    });
    url = `redis://127.0.0.1:${redis.port}/0`;
    const env = { REDIS_URL: url, REDIS_USERNAME: serviceUser, REDIS_PASSWORD: SERVICE_PASSWORD };
    [chatA, chatB, notifier] = await Promise.all([
      startService("chat", { env }),
      startService("chat", { env }),
      startService("notifier", { env: { ...env, NOTIFIER_API_KEYS: API_KEY, NOTIFIER_STREAM: STREAM } }),
    ]);
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("let chat and notifier work as the services' user: messages across pods, history, API and stream events", async () => {
    const [alice, bob] = await Promise.all([connectClient(chatA.url, "alice"), connectClient(chatB.url, "bob")]);
    for (const c of [alice, bob]) expect(((await c.emitWithAck("join", { room: "acl" })) as Ack).ok).toBe(true);
    const messages = record<ChatMessage>(bob, "message");
    const notifications = record<Notification>(bob, "notification");
    expect(((await alice.emitWithAck("message", { room: "acl", text: "as the chat user" })) as Ack).ok).toBe(true);
    await waitFor(() => messages.length === 1, { what: "bob to get alice's message across pods" });

    const response = await fetch(`${notifier.url}/v1/rooms/acl/events`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ id: "from-api", type: "t", data: 1 }),
    });
    expect(response.status).toBe(202);
    // A producer with only its own user and password: XADD to the intake stream, nothing else.
    const producer = new Redis(url, { username: producerUser, password: PRODUCER_PASSWORD, enableReadyCheck: false });
    try {
      await producer.xadd(STREAM, "*", "room", "acl", "type", "t", "data", "2", "id", "from-stream");
    } finally {
      producer.disconnect();
    }
    await waitFor(() => notifications.length === 2, { what: "the API event and the stream event to reach bob" });
    expect(notifications.map((n) => n.eventId).sort()).toEqual(["from-api", "from-stream"]);

    const carol = await connectClient(chatA.url, "carol");
    const ack = (await carol.emitWithAck("join", { room: "acl" })) as Ack & { messages?: { text?: string }[] };
    expect(ack.ok).toBe(true);
    expect(ack.messages?.some((m) => m.text === "as the chat user")).toBe(true);
  });

  it("refuse FLUSHALL, CONFIG, DEBUG, KEYS and SHUTDOWN to the services' user, and keep the data", async () => {
    const service = new Redis(url, { username: serviceUser, password: SERVICE_PASSWORD });
    try {
      const refused = async (...command: [string, ...string[]]) =>
        service.call(...command).then(
          () => "accepted",
          (err: Error) => err.message,
        );
      for (const command of [
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["CONFIG", "SET", "maxmemory", "1"],
        ["CONFIG", "GET", "requirepass"],
        ["DEBUG", "SLEEP", "0"],
        ["KEYS", "*"],
        ["SHUTDOWN", "NOSAVE"],
        ["ACL", "LIST"],
      ] as [string, ...string[]][])
        expect(await refused(...command), command.join(" ")).toMatch(/^NOPERM/);
      expect(await service.dbsize()).toBeGreaterThan(0);
    } finally {
      service.disconnect();
    }
  });

  it("let the producers' user XADD to the intake stream only", async () => {
    const producer = new Redis(url, { username: producerUser, password: PRODUCER_PASSWORD, enableReadyCheck: false });
    try {
      const attempt = (p: Promise<unknown>) =>
        p.then(
          () => "accepted",
          (err: Error) => err.message,
        );
      expect(await attempt(producer.xadd(STREAM, "*", "broadcast", "1", "type", "t", "data", "null"))).toBe("accepted");
      // Forging a chat message means writing a room log or publishing on the bus: both refused.
      expect(await attempt(producer.xadd("chat:log:room", "*", "m", "forged"))).toMatch(/^NOPERM/);
      expect(await attempt(producer.publish("chat:bus", "forged"))).toMatch(/^NOPERM/);
      expect(await attempt(producer.xrange(STREAM, "-", "+"))).toMatch(/^NOPERM/);
      expect(await attempt(producer.set("x", "y"))).toMatch(/^NOPERM/);
      expect(await attempt(producer.flushall())).toMatch(/^NOPERM/);
    } finally {
      producer.disconnect();
    }
  });
});
