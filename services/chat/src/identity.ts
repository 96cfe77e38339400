import { describeIssues, openAuth, type User } from "@chat/shared";
import { HandshakeError } from "./handshake-error.js";

export { userRoom } from "@chat/shared";

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

/** The sharded adapter's uid: 8 random bytes in hex. Its response channel is a room's channel of that name. */
const ADAPTER_UID = /^[0-9a-f]{16}$/;

/**
 * Why `room` may not be joined, or undefined. Socket.IO and its adapter use rooms and channels
 * named like these (issue 24 #12): a socket's own id room (joining another socket's would receive
 * what is sent to it) and, in sharded mode, a pod's adapter uid, whose channel is that pod's
 * response channel (a member leaving it would unsubscribe the pod). Room names of 16 lowercase hex
 * digits are therefore reserved whatever pod they would belong to. `connections` holds the ids of
 * this pod's connections (the namespace's sockets, the asking one among them).
 */
export function reservedRoom(room: string, connections: { has(id: string): boolean }): string | undefined {
  if (connections.has(room)) return `${room} is a connection's own room; pick another name`;
  if (ADAPTER_UID.test(room)) return `${room} is reserved (16 hex digits name the server's internal channels); pick another name`;
  return undefined;
}
