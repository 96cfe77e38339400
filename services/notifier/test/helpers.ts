import { Cluster, Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import { startService, waitFor, type RedisEngine, type ServiceProcess } from "@chat/testkit";
import type { Ack } from "@chat/shared";

/** Two keys, as during a rotation: either one is accepted. */
export const API_KEY = "test-key-0123456789abcdef";
export const OLD_API_KEY = "old-key-fedcba9876543210";

/** A notifier on `redis`: a URL, or the variables of a `RedisEngine` (`engine.env`). */
export function startNotifier(redis: string | Record<string, string>, env: Record<string, string> = {}, pod?: string): Promise<ServiceProcess> {
  return startService("notifier", {
    pod,
    env: { ...(typeof redis === "string" ? { REDIS_URL: redis } : redis), NOTIFIER_API_KEYS: `${OLD_API_KEY}, ${API_KEY}`, ...env },
  });
}

export interface Reply {
  status: number;
  body: { id?: string; error?: { code: string; message: string } };
}

/** POSTs a JSON body (a string is sent as is) with the API key; `headers` override. */
export async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Reply["body"] };
}

/** A plain client for the test's own XADDs and inspections. */
export function redisClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

/**
 * A client for the test's own commands on any engine: the master as started, or on a cluster a
 * `Cluster` that sends each key to its slot's master.
 */
export function engineClient(engine: RedisEngine): Redis | Cluster {
  if (engine.kind !== "cluster") return redisClient(engine.url);
  const nodes = engine.env.REDIS_CLUSTER_NODES!.split(",").map((node) => ({ host: node.split(":")[0]!, port: Number(node.split(":")[1]) }));
  return new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
}

/** XADD with fields given as an object, in order. */
export function xadd(redis: Redis | Cluster, stream: string, fields: Record<string, string>): Promise<string> {
  return redis.xadd(stream, "*", ...Object.entries(fields).flat()) as Promise<string>;
}

/** Entries of the group not yet acked; -1 while the notifier has not created the group yet. */
export async function pendingCount(redis: Redis | Cluster, stream: string, group = "notifier"): Promise<number> {
  try {
    const [count] = (await redis.xpending(stream, group)) as [number, ...unknown[]];
    return count;
  } catch (err) {
    if (/NOGROUP/.test((err as Error).message)) return -1;
    throw err;
  }
}

export async function waitForNoPending(redis: Redis | Cluster, stream: string, timeoutMs = 15_000): Promise<void> {
  let last = -1;
  await waitFor(async () => (last = await pendingCount(redis, stream)) === 0, {
    timeoutMs,
    intervalMs: 50,
    what: () => `no pending entries in ${stream} (still ${last})`,
  });
}

/**
 * Joins `room`. A chat pod logs "is up" once it listens, which can be before its Redis connections
 * are ready; until then it answers `unavailable`, so that (and only that) is retried.
 */
export async function joinRoom(socket: Socket, room: string): Promise<void> {
  let last: Ack | undefined;
  await waitFor(
    async () => {
      last = (await socket.emitWithAck("join", { room })) as Ack;
      if (!last.ok && last.error.code !== "unavailable") throw new Error(`join ${room}: ${JSON.stringify(last)}`);
      return last.ok;
    },
    { intervalMs: 50, what: () => `join ${room} to succeed (last: ${JSON.stringify(last)})` },
  );
}
