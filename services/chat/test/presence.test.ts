import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Socket } from "socket.io-client";
import {
  closeAllClients,
  connectClient,
  record,
  REDIS_ENGINES,
  startRedisEngine,
  startService,
  stopAllServices,
  waitFor,
  type RedisEngine,
  type ServiceProcess,
} from "@chat/testkit";
import type { Ack, PresenceEvent, User } from "@chat/shared";

const TTL_SECONDS = 3;

async function members(pod: ServiceProcess, room: string): Promise<string[]> {
  const res = await fetch(`${pod.url}/v1/rooms/${room}/members`);
  const body = (await res.json()) as { members: User[] };
  return body.members.map((m) => m.name);
}

describe.each(REDIS_ENGINES)("presence across pods, on %s Redis", (engine) => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];
  let ann: Socket;
  let bob: Socket;
  let cat: Socket;

  beforeAll(async () => {
    redis = await startRedisEngine(engine);
    const env = { ...redis.env, PRESENCE_TTL_SECONDS: String(TTL_SECONDS) };
    pods = await Promise.all([0, 1, 2].map((i) => startService("chat", { pod: `p-${i}`, env })));
    ann = await connectClient(pods[0]!.url, "ann");
    bob = await connectClient(pods[1]!.url, "bob");
    cat = await connectClient(pods[2]!.url, "cat");
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("lists every member on every pod in the join ack and over HTTP", async () => {
    await ann.emitWithAck("join", { room: "hall" });
    await bob.emitWithAck("join", { room: "hall" });
    const ack: Ack<{ members: User[] }> = await cat.emitWithAck("join", { room: "hall" });
    expect(ack.ok && ack.members.map((m) => m.name)).toEqual(["ann", "bob", "cat"]);
    expect(await members(pods[0]!, "hall")).toEqual(["ann", "bob", "cat"]);
  });

  // Each test has its own room, so that it runs alone (`-t`) as well as after the others.
  it("announces a user once, however many connections they have", async () => {
    const heard = record<PresenceEvent>(bob, "presence");
    const seen = () => heard.filter((e) => e.room === "phones").map((e) => `${e.user.name} ${e.action}`);
    await bob.emitWithAck("join", { room: "phones" });
    await ann.emitWithAck("join", { room: "phones" });
    await cat.emitWithAck("join", { room: "phones" });
    await waitFor(() => seen().length === 2, { what: "bob to hear ann and cat join" });
    expect([...seen()].sort()).toEqual(["ann join", "cat join"]);
    const annPhone = await connectClient(pods[2]!.url, "ann");
    await annPhone.emitWithAck("join", { room: "phones" });
    annPhone.close();
    // Cat's own leave is the marker: by the time bob hears it, he would have heard about ann.
    await cat.emitWithAck("leave", { room: "phones" });
    await waitFor(() => seen().length > 2, { what: "cat's leave" });
    expect(seen().slice(2)).toEqual(["cat leave"]);
  });

  it("drops a SIGKILLed pod's users within the TTL and announces each leave once, cluster-wide, but none for a user still connected elsewhere", async () => {
    for (const member of [ann, bob, cat]) await member.emitWithAck("join", { room: "doomed" });
    const annTablet = await connectClient(pods[1]!.url, "ann");
    await annTablet.emitWithAck("join", { room: "doomed" });
    const heardByAnn = record<PresenceEvent>(ann, "presence");
    const heardByCat = record<PresenceEvent>(cat, "presence");
    // Only this test's room: bob's other rooms (from the tests before) announce his leave too.
    const leaves = (seen: PresenceEvent[]) =>
      seen.filter((e) => e.action === "leave" && e.room === "doomed").map((e) => `${e.user.name} ${e.action} ${e.room}`);

    await pods[1]!.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(async () => (await members(pods[0]!, "doomed")).join() === "ann,cat", {
      timeoutMs: TTL_SECONDS * 1000 + 5000,
      intervalMs: 100,
      what: "bob to drop out of the member list",
    });
    await waitFor(() => leaves(heardByAnn).length > 0 && leaves(heardByCat).length > 0, {
      timeoutMs: TTL_SECONDS * 1000 + 5000,
      what: "the surviving pods to announce bob's leave",
    });
    // Within the TTL and one heartbeat (a third of it), plus room for a busy machine.
    expect(Date.now() - killedAt).toBeLessThanOrEqual(TTL_SECONDS * 1000 + 5000);
    // Absence cannot be waited on: let every surviving pod run two more heartbeats, any of which
    // would announce again if the claim were not once cluster-wide.
    await new Promise((resolve) => setTimeout(resolve, (TTL_SECONDS * 1000 * 2) / 3 + 500));
    expect(leaves(heardByAnn)).toEqual(["bob leave doomed"]);
    expect(leaves(heardByCat)).toEqual(["bob leave doomed"]);
  });

  it("refuses a bad room name on the members endpoint", async () => {
    const res = await fetch(`${pods[0]!.url}/v1/rooms/${encodeURIComponent("bad room")}/members`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_request");
  });
});

describe("presence in a big room (more than PRESENCE_ANNOUNCE_MAX_MEMBERS members)", () => {
  let redis: RedisEngine;
  let pods: ServiceProcess[];

  beforeAll(async () => {
    redis = await startRedisEngine("standalone");
    const env = { ...redis.env, PRESENCE_ANNOUNCE_MAX_MEMBERS: "2" };
    pods = await Promise.all([0, 1].map((i) => startService("chat", { pod: `big-${i}`, env })));
  });

  afterAll(async () => {
    closeAllClients();
    await stopAllServices();
    await redis?.dispose();
  });

  it("announces no join or leave once the room is big, and its join ack lists the first members by name with the total in memberCount", async () => {
    const [ann, bob, cat, dan] = await Promise.all(["ann", "bob", "cat", "dan"].map((name, i) => connectClient(pods[i % 2]!.url, name)));
    const heard = record<PresenceEvent>(ann!, "presence");
    const got = record<{ text: string }>(ann!, "message");
    await ann!.emitWithAck("join", { room: "crowd" });
    const second: Ack<{ members: User[]; memberCount: number }> = await bob!.emitWithAck("join", { room: "crowd" });
    expect(second.ok && [second.members.map((m) => m.name), second.memberCount]).toEqual([["ann", "bob"], 2]);
    await waitFor(() => heard.length === 1, { what: "ann to hear bob join (two members: a small room)" });
    const third: Ack<{ members: User[]; memberCount: number }> = await dan!.emitWithAck("join", { room: "crowd" });
    expect(third.ok && [third.members.map((m) => m.name), third.memberCount]).toEqual([["ann", "bob"], 3]);
    const fourth: Ack<{ members: User[]; memberCount: number }> = await cat!.emitWithAck("join", { room: "crowd" });
    expect(fourth.ok && fourth.memberCount).toBeGreaterThanOrEqual(3);
    await dan!.emitWithAck("leave", { room: "crowd" });
    // Cat's message is the marker: sent after the joins and the leave were acked, it reaches ann
    // after any announcement of them would have.
    await cat!.emitWithAck("message", { room: "crowd", text: "marker" });
    await waitFor(() => got.some((m) => m.text === "marker"), { what: "ann to receive cat's marker" });
    expect(heard.map((e) => `${e.user.name} ${e.action}`)).toEqual(["bob join"]);
    // The full list stays one request away.
    const res = await fetch(`${pods[0]!.url}/v1/rooms/crowd/members`);
    expect(((await res.json()) as { members: User[] }).members.map((m) => m.name)).toEqual(["ann", "bob", "cat"]);
  });
});
