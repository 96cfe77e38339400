import type { Redis } from "ioredis";
import { z } from "zod";
import { SESSION_ENDED_EVENT, createBusEmitter, revokedTokenKey, sessionRoom, type BusMode, type SessionEnded } from "@chat/shared";

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
export function createRevoker(redis: Redis, busMode: BusMode = "classic"): Revoker {
  // The emitter encodes what the chat pods' adapter expects (in the deployment's bus mode); its
  // publishes are collected here and sent in one MULTI with the denylist entry, so a revocation is
  // all done or, on error, not at all (the emitter itself would not tell us whether Redis took it).
  let outbox: [command: "publish" | "spublish", channel: string, message: Buffer][] = [];
  const emitter = createBusEmitter(
    {
      publish: (channel, message) => outbox.push(["publish", channel, message]),
      spublish: (channel, message) => outbox.push(["spublish", channel, message]),
    },
    busMode,
  );
  return {
    async revoke({ jti, exp }) {
      const now = Math.floor(Date.now() / 1000);
      if (exp > now + MAX_LIFETIME_SECONDS) throw new RangeError(`exp is more than ${MAX_LIFETIME_SECONDS / 86_400} days away`);
      const denylisted = exp > now;
      outbox = [];
      // Each socket gets the reason, then the disconnect: both travel in order on one channel.
      emitter.to(sessionRoom(jti)).emit(SESSION_ENDED_EVENT, { reason: "token_revoked", reconnect: false } satisfies SessionEnded);
      emitter.in(sessionRoom(jti)).disconnectSockets();
      const multi = redis.multi();
      // The denylist entry first: a socket that reconnects after the disconnect is refused.
      if (denylisted) multi.set(revokedTokenKey(jti), "1", "EXAT", exp);
      for (const [command, channel, message] of outbox) multi[command](channel, message);
      await multi.exec();
      return { jti, denylisted };
    },
  };
}
