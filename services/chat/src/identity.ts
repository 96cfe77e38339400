import type { Socket } from "socket.io";
import { describeIssues, openAuth, type ErrorCode, type User } from "@chat/shared";

export { userRoom } from "@chat/shared";

/** A `connect_error` the client can read: `err.message` for people, `err.data.code` for code. */
export class HandshakeError extends Error {
  readonly data: { code: ErrorCode; retryAfterMs?: number };
  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.data = retryAfterMs === undefined ? { code } : { code, retryAfterMs };
  }
}

/**
 * Open mode: the handshake's `auth.name` is the identity, and the user id is the name. Anyone can
 * claim any name, which is why a later auth mode checks signed tokens instead.
 */
export function openIdentity(auth: unknown): User {
  if (typeof auth !== "object" || auth === null || (auth as { name?: unknown }).name === undefined) {
    throw new HandshakeError("unauthorized", "auth.name is required: a display name of 1-32 printable characters");
  }
  const result = openAuth.safeParse(auth);
  if (!result.success) throw new HandshakeError("unauthorized", `auth.${describeIssues(result.error)}`);
  return { id: result.data.name, name: result.data.name };
}

export function userOf(socket: Socket): User {
  return (socket.data as { user: User }).user;
}
