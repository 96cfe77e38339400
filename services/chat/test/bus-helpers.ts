import type { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import { metricValue, startService, type ServiceProcess } from "@chat/testkit";
import { BUS_MAIN_CHANNEL, busRoomChannel, type Ack, type BusMode } from "@chat/shared";

/** What a pod's `/debug/bus` says: Redis's view of its subscriptions, and what its rooms call for. */
export interface BusState {
  mode: BusMode;
  ready: boolean;
  subscriptions: string[];
  expected: string[];
}

export async function busState(pod: ServiceProcess): Promise<BusState> {
  return (await (await fetch(`${pod.probeUrl}/debug/bus`)).json()) as BusState;
}

/** Messages the pod has read from Redis so far. */
export const busMessagesReceived = (pod: ServiceProcess): Promise<number> => metricValue(pod, "chat_bus_messages_received_total");

/** `count` chat processes on one Redis, all configured with `mode`. */
export function startPods(
  count: number,
  redisUrl: string,
  mode: BusMode | "auto",
  prefix = "chat",
  more: Record<string, string> = {},
): Promise<ServiceProcess[]> {
  // `/debug/bus` is off unless asked for: these tests read it.
  const env = { REDIS_URL: redisUrl, BUS_MODE: mode, DEBUG_ENDPOINTS: "1", ...more };
  return Promise.all(Array.from({ length: count }, (_, i) => startService("chat", { pod: `${prefix}-${i}`, env })));
}

/** The shard channels of `rooms` a pod must be on: the two every adapter has, and one per room. */
export function channelsFor(rooms: Iterable<string>, adapterChannels: string[]): string[] {
  return [...adapterChannels, ...[...rooms].map(busRoomChannel)].sort();
}

/** The main channel and the pod's own response channel (`socket.io#/#<uid>#`), from its state. */
export function baseChannels(state: BusState): string[] {
  return state.subscriptions.filter((channel) => channel === BUS_MAIN_CHANNEL || /^socket\.io#\/#[0-9a-f]{16}#$/.test(channel));
}

/** Subscribers per shard channel, as Redis counts them (`PUBSUB SHARDNUMSUB`). */
export async function shardSubscribers(redis: Redis, channels: string[]): Promise<Map<string, number>> {
  const reply = (await redis.call("PUBSUB", "SHARDNUMSUB", ...channels)) as (string | number)[];
  const counts = new Map<string, number>();
  for (let i = 0; i < reply.length; i += 2) counts.set(String(reply[i]), Number(reply[i + 1]));
  return counts;
}

/** Every shard channel with a subscriber, server-wide (`PUBSUB SHARDCHANNELS`). */
export async function shardChannels(redis: Redis): Promise<string[]> {
  return ((await redis.call("PUBSUB", "SHARDCHANNELS")) as string[]).sort();
}

export async function join(socket: Socket, room: string): Promise<Ack<{ messages: { id: string; prev: string }[] }>> {
  const ack = (await socket.emitWithAck("join", { room })) as Ack<{ messages: { id: string; prev: string }[] }>;
  if (!ack.ok) throw new Error(`join ${room}: ${ack.error.message}`);
  return ack;
}

export async function send(socket: Socket, room: string, text: string): Promise<string> {
  const ack = (await socket.emitWithAck("message", { room, text })) as Ack<{ id: string }>;
  if (!ack.ok) throw new Error(`message to ${room}: ${ack.error.message}`);
  return ack.id;
}
