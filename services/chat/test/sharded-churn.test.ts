import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { closeAllClients, connectMany, startRedis, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";
import { BUS_MAIN_CHANNEL, busRoomChannel, userRoom, type Ack } from "@chat/shared";
import { baseChannels, busState, channelsFor, shardChannels, shardSubscribers, startPods } from "./bus-helpers.js";
import { Member, seeded } from "./membership.js";

const CLIENTS = 200;
const ROOMS = 30;
const ROUNDS = 8;
const MAX_ROOMS_EACH = 3;
const rooms = Array.from({ length: ROOMS }, (_, i) => `churn-${i}`);

describe("200 clients joining and leaving random rooms on 3 sharded pods", () => {
  let redis: RedisServer;
  let db: Redis;
  let pods: ServiceProcess[];
  let members: Member[];
  const random = seeded(9);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  let sentDuringChurn = 0;

  /**
   * The rooms each pod has a member in, from the test's own bookkeeping, with the per-user room
   * of each of its clients: those are named rooms too, with channels of their own.
   */
  const roomsByPod = () => pods.map((_, pod) => new Set(members.filter((m) => m.pod === pod).flatMap((m) => [...m.rooms(), userRoom(m.user)])));

  beforeAll(async () => {
    redis = await startRedis();
    db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    pods = await startPods(3, redis.url, "sharded", "churn");
    const sockets = await connectMany(
      pods.map((pod) => pod.url),
      CLIENTS,
      "churner",
    );
    // connectMany names them churner-<i> and spreads them round-robin.
    members = sockets.map((socket, i) => new Member(socket, `churner-${i}`, i % pods.length));
  });

  afterAll(async () => {
    closeAllClients();
    db?.disconnect();
    await stopAllServices();
    await redis?.dispose();
  });

  /** Each client joins a random room, or leaves one of its rooms. */
  async function churnOnce(): Promise<void> {
    await Promise.all(
      members.map((member) => {
        const mine = member.joined();
        if (mine.length && (mine.length >= MAX_ROOMS_EACH || random() < 0.4)) return member.leave(pick(mine));
        const other = rooms.filter((room) => !member.rooms().includes(room));
        return member.join(pick(other));
      }),
    );
  }

  /** Sends messages from random members into their rooms until `stop` says so, a few at a time. */
  async function talk(stop: () => boolean): Promise<void> {
    const worker = async () => {
      while (!stop()) {
        const speaker = pick(members.filter((m) => m.joined().length > 0));
        const room = pick(speaker.joined());
        const ack = (await speaker.socket.emitWithAck("message", { room, text: "churn" })) as Ack;
        // The speaker may have started leaving meanwhile; any other refusal is a failure.
        if (ack.ok) sentDuringChurn++;
        else if (speaker.isIn(room)) throw new Error(`message to ${room}: ${ack.error.message}`);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
  }

  it("delivers exactly while the rooms churn: nothing lost, nothing twice, nothing outside a stay", async () => {
    await churnOnce(); // everyone in a room first, so that there are always speakers
    let churning = true;
    const traffic = talk(() => !churning);
    for (let round = 1; round < ROUNDS; round++) await churnOnce();
    churning = false;
    await traffic;
    expect(sentDuringChurn).toBeGreaterThan(100);

    // One last message in every room with members, which all of them must get: a stay that lost
    // its subscription would miss it, and any loss before it shows as a gap in the chain.
    const finals = await Promise.all(
      rooms.map(async (room) => {
        const speaker = members.find((m) => m.isIn(room));
        if (!speaker) return undefined;
        const ack = (await speaker.socket.emitWithAck("message", { room, text: "final" })) as Ack<{ id: string }>;
        if (!ack.ok) throw new Error(ack.error.message);
        return { room, id: ack.id };
      }),
    );
    const expected = finals.flatMap((final) => (final ? members.filter((m) => m.isIn(final.room)).map((m) => ({ m, ...final })) : []));
    await waitFor(() => expected.every(({ m, room, id }) => m.received(room, id)), {
      what: () => `the final messages (${expected.filter(({ m, room, id }) => !m.received(room, id)).length} of ${expected.length} missing)`,
    });
    expect(members.flatMap((m) => m.check())).toEqual([]);
  });

  it("leaves each pod subscribed to exactly the rooms it has members in, in its own view and in Redis's", async () => {
    const wanted = roomsByPod();
    const states = await Promise.all(pods.map(busState));
    for (const [pod, state] of states.entries()) {
      expect(state.subscriptions).toEqual(channelsFor(wanted[pod]!, baseChannels(state)));
      expect(state.expected).toEqual(state.subscriptions);
    }
    const perChannel = await shardSubscribers(db, rooms.map(busRoomChannel));
    for (const room of rooms) {
      expect(perChannel.get(busRoomChannel(room)), room).toBe(wanted.filter((set) => set.has(room)).length);
    }
    expect(await shardChannels(db)).toEqual([...new Set(states.flatMap((s) => s.subscriptions))].sort());
  });

  it("unsubscribes from every room once the clients are gone", async () => {
    closeAllClients();
    await waitFor(async () => (await Promise.all(pods.map(busState))).every((s) => s.subscriptions.length === 2), {
      what: "every pod to be down to its main and response channels",
    });
    const channels = await shardChannels(db);
    expect(channels.filter((c) => c !== BUS_MAIN_CHANNEL)).toHaveLength(3); // one response channel per pod
    expect((await shardSubscribers(db, [BUS_MAIN_CHANNEL])).get(BUS_MAIN_CHANNEL)).toBe(3);
  });
});
