import type { ErrorCode } from "@chat/shared";

/**
 * A refused connection or request, said so the client can act on it. In a handshake it becomes the
 * `connect_error`: `err.message` for people, `err.data.code` (and `retryAfterMs`) for code.
 */
export class HandshakeError extends Error {
  readonly data: { code: ErrorCode; retryAfterMs?: number };
  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.data = retryAfterMs === undefined ? { code } : { code, retryAfterMs };
  }
}
