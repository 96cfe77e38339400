import { createHash, timingSafeEqual } from "node:crypto";

const digest = (key: string): Buffer => createHash("sha256").update(key, "utf8").digest();

/**
 * Checks `Authorization: Bearer <key>` against the configured keys and names the key that
 * matched (a prefix of its SHA-256, never the key itself: it keys rate limits and may be logged).
 * Comparing digests keeps every comparison the same length (a raw comparison leaks the key's
 * length), and every configured key is compared without an early exit, so timing says nothing
 * about which key, if any, came close.
 */
export function createKeyCheck(keys: string[]): (authorization: string | undefined) => string | undefined {
  const known = keys.map((key) => ({ digest: digest(key), id: digest(key).toString("hex").slice(0, 16) }));
  return (authorization) => {
    const match = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
    // Something is still compared when the header is missing, so its absence is not faster.
    const presented = digest(match?.[1] ?? "");
    let found: string | undefined;
    for (const key of known) {
      if (timingSafeEqual(presented, key.digest)) found = key.id;
    }
    return match === null ? undefined : found;
  };
}
