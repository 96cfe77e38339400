import type { ChainableCommander, Cluster, Redis } from "ioredis";
import { z } from "zod";
import {
  SESSION_ENDED_EVENT,
  busPublishCommand,
  encodeBroadcast,
  encodeDisconnect,
  revokedTokenKey,
  sessionRoom,
  type BusMode,
  type SessionEnded,
} from "@chat/shared";

/** Tokens that outlive this are refused: nobody should mint them, and the denylist would never empty. */
const MAX_LIFETIME_SECONDS = 366 * 86_400;

/** `POST /v1/tokens/revoke`: the token's id and its `exp` (seconds since the epoch), as in the token. */
const SECONDS = "must be whole seconds since the epoch";
export const revokeRequest = z.strictObject(
  {
    jti: z.string({ error: "must be a string (the token's jti)" }).min(1, "must not be empty").max(256, "must be at most 256 characters"),
    exp: z.number({ error: SECONDS }).int(SECONDS).positive(SECONDS),
  },
  { error: "the body must be a JSON object { jti, exp }" },
);
export type RevokeRequest = z.infer<typeof revokeRequest>;

export interface RevokeResult {
  jti: string;
  /** False when the token had already expired: nothing to deny, live sockets are still ended. */
  denylisted: boolean;
}

export interface Revoker {
  revoke(request: RevokeRequest): Promise<RevokeResult>;
}

/**
 * Revokes a token: its `jti` goes on the denylist the chat pods check on connect, for as long as
 * the token would have lived (so the list empties itself), and every live socket that used it,
 * on every pod, is told `session_ended` and disconnected through the bus. Chat pods put each
 * socket in its token's room (`sessionRoom`), which is what makes one publish reach them all.
 */
export function createRevoker(redis: Redis | Cluster, busMode: BusMode = "classic"): Revoker {
  const publish = busPublishCommand(busMode) === "SPUBLISH" ? "spublish" : "publish";
  // On a cluster a sharded channel is in a slot of its own, which a MULTI cannot share with the
  // denylist key (the chat pods read it by the token's id alone): the entry is then set first, and
  // the two publishes follow in a MULTI of their own. A failure in between answers 503, and the
  // retry sets the same entry again, so a revocation is still done whole or retried.
  const split = redis.isCluster && publish === "spublish";
  const exec = async (multi: ChainableCommander) => {
    // exec() resolves even when a command inside failed (a Redis that refuses SPUBLISH, an ACL,
    // OOM): each reply carries its own error, and any of them means the revocation is not done.
    const replies = await multi.exec();
    if (!replies) throw new Error("the revocation's transaction was aborted");
    const failed = replies.find(([err]) => err)?.[0];
    if (failed) throw failed;
  };
  return {
    async revoke({ jti, exp }) {
      const now = Math.floor(Date.now() / 1000);
      if (exp > now + MAX_LIFETIME_SECONDS) throw new RangeError(`exp is more than ${MAX_LIFETIME_SECONDS / 86_400} days away`);
      const denylisted = exp > now;
      // The bus messages go in one MULTI with the denylist entry, so a revocation is all done or,
      // on error, not at all (the emitter itself would not tell us whether Redis took them).
      // Each socket gets the reason, then the disconnect: both travel in order on one channel.
      const reason = encodeBroadcast(busMode, sessionRoom(jti), SESSION_ENDED_EVENT, { reason: "token_revoked", reconnect: false } satisfies SessionEnded);
      const disconnect = encodeDisconnect(busMode, sessionRoom(jti));
      // The denylist entry first: a socket that reconnects after the disconnect is refused.
      if (split && denylisted) await redis.set(revokedTokenKey(jti), "1", "EXAT", exp);
      const multi = redis.multi();
      if (!split && denylisted) multi.set(revokedTokenKey(jti), "1", "EXAT", exp);
      for (const { channel, bytes } of [reason, disconnect]) multi[publish](channel, bytes);
      await exec(multi);
      return { jti, denylisted };
    },
  };
}
