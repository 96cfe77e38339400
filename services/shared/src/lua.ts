import { createHash } from "node:crypto";
import type { ChainableCommander, Cluster, Redis } from "ioredis";

export type LuaArg = string | number | Buffer;

/** A Lua script, run the same way everywhere in the product. */
export interface LuaScript<T> {
  /** `keys` first (as many as the script declares), then its ARGV. */
  run(redis: Redis | Cluster, ...keysAndArgs: LuaArg[]): Promise<T>;
  /**
   * Queues a run on `pipeline` (its reply comes back with the pipeline's). Call `load` on the
   * same pipeline first: a queued EVALSHA has no EVAL to fall back on.
   */
  queue(pipeline: ChainableCommander, ...keysAndArgs: LuaArg[]): void;
  /** Queues a `SCRIPT LOAD` (one reply, the SHA): the runs queued after it find the script. */
  load(pipeline: ChainableCommander): void;
}

/** Every script made with `luaScript` in this process, by SHA: the cluster test runs each of them. */
const made = new Map<string, { source: string; numberOfKeys: number }>();

/** The SHA, source and number of keys of every script `luaScript` has made in this process. */
export function luaScripts(): { sha: string; source: string; numberOfKeys: number }[] {
  return [...made].map(([sha, script]) => ({ sha, ...script }));
}

/**
 * A script run by EVALSHA, with EVAL when Redis does not know it (after a restart, or on a node
 * that never ran it); EVAL caches it for every later EVALSHA.
 *
 * Why not ioredis' `defineCommand`, which does the same: it wraps every call in more objects and
 * promises. Under a flood of new connections (presence counts each one with a script) those are
 * still waiting for Redis when the young generation is collected, get promoted and stay until a
 * full GC: measured at about 1.7 KiB of RSS per connection over 10 000 (docs/performance.md).
 * It also patches the client with a command per script, which then has to be declared to
 * TypeScript and guarded against being defined twice per connection.
 */
export function luaScript<T>(source: string, numberOfKeys: number): LuaScript<T> {
  const sha = createHash("sha1").update(source).digest("hex");
  made.set(sha, { source, numberOfKeys });
  // The first run on each TCP connection is an EVAL, as ioredis does: after a Redis restart a
  // burst of EVALSHAs would all fail with NOSCRIPT, and their EVAL retries could interleave with
  // newer runs that found the script, so a sender's back-to-back appends could swap places.
  const loadedOn = new WeakMap<object, unknown>();
  return {
    async run(redis, ...keysAndArgs) {
      const socket = (redis as { stream?: unknown }).stream;
      if (socket !== undefined && loadedOn.get(redis) !== socket) {
        loadedOn.set(redis, socket);
        return (await redis.eval(source, numberOfKeys, ...keysAndArgs)) as T;
      }
      try {
        return (await redis.evalsha(sha, numberOfKeys, ...keysAndArgs)) as T;
      } catch (err) {
        if (!(err as Error).message.startsWith("NOSCRIPT")) throw err;
        return (await redis.eval(source, numberOfKeys, ...keysAndArgs)) as T;
      }
    },
    queue(pipeline, ...keysAndArgs) {
      pipeline.evalsha(sha, numberOfKeys, ...keysAndArgs);
    },
    load(pipeline) {
      pipeline.script("LOAD", source);
    },
  };
}
