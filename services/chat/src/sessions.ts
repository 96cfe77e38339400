import { SESSION_ENDED_EVENT, execBySlot, revokedTokenKey, sessionRoom, type RedisClient, type SessionEnded } from "@chat/shared";
import type { Session } from "./auth.js";
import type { ChatSocket } from "./socket-types.js";

/** Timers can wait at most this long (about 24.8 days); a later expiry is re-armed on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** True when the token was revoked. A denylist entry lives as long as the token would have. */
export async function isRevoked(redis: RedisClient | undefined, jti: string | undefined): Promise<boolean> {
  if (!redis || !jti) return false;
  return (await redis.exists(revokedTokenKey(jti))) === 1;
}

/**
 * Binds a connection's life to its token's: it is in its token's room (so a revocation reaches
 * it on any pod), and it is ended with `session_ended` when the token expires. The client can
 * then fetch a new token and reconnect.
 */
export function bindSession(socket: ChatSocket, session: Session, redis?: RedisClient): void {
  if (session.jti) {
    const jti = session.jti;
    // A revocation published between the handshake's denylist check and this pod hearing the
    // token's room would be missed: once the room is in place, the denylist is read again.
    void Promise.resolve(socket.join(sessionRoom(jti)))
      .then(() => isRevoked(redis, jti))
      .then(
        (revoked) => revoked && socket.connected && endSession(socket, { reason: "token_revoked", reconnect: false }),
        () => undefined,
      );
  }
  if (session.expiresAt === undefined) return;
  const expiresAt = session.expiresAt;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const wait = expiresAt - Date.now();
    if (wait > MAX_TIMER_MS) {
      timer = setTimeout(arm, MAX_TIMER_MS);
      return;
    }
    timer = setTimeout(() => endSession(socket, { reason: "token_expired", reconnect: true }), Math.max(0, wait));
  };
  arm();
  socket.once("disconnect", () => clearTimeout(timer));
}

/**
 * Ends the local sockets whose tokens were revoked while this pod could not hear the bus (a
 * revocation is published once; a pod cut off from Redis at that moment would miss it).
 */
export async function endRevokedSessions(redis: RedisClient, sockets: Iterable<ChatSocket>): Promise<number> {
  // Every connected socket passed the handshake, which set its session; only tokens with a jti can be revoked.
  const withTokens = [...sockets].flatMap((socket) => (socket.data.session.jti ? [{ socket, jti: socket.data.session.jti }] : []));
  if (withTokens.length === 0) return 0;
  // One pipeline; on a Redis Cluster one per slot the denylist entries fall in, sent at once.
  const replies = await execBySlot(
    redis,
    withTokens.map(({ jti }) => ["exists", revokedTokenKey(jti)]),
  );
  let ended = 0;
  for (const [i, { socket }] of withTokens.entries()) {
    if (replies[i] === 1) {
      endSession(socket, { reason: "token_revoked", reconnect: false });
      ended++;
    }
  }
  return ended;
}

export function endSession(socket: ChatSocket, ended: SessionEnded): void {
  socket.emit(SESSION_ENDED_EVENT, ended);
  socket.disconnect();
}
