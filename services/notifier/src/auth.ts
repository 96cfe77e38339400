import { createHash, timingSafeEqual } from "node:crypto";

const digest = (key: string): Buffer => createHash("sha256").update(key, "utf8").digest();

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. Comparing SHA-256 digests
 * keeps every comparison the same length (a raw comparison leaks the key's length), and every
 * configured key is compared without an early exit, so timing says nothing about which key, if
 * any, came close.
 */
export function createKeyCheck(keys: string[]): (authorization: string | undefined) => boolean {
  const known = keys.map(digest);
  return (authorization) => {
    const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
    // Something is still compared when the header is missing, so its absence is not faster.
    const presented = digest(match?.[1] ?? "");
    let found = false;
    for (const key of known) {
      if (timingSafeEqual(presented, key)) found = true;
    }
    return found && match !== null;
  };
}
