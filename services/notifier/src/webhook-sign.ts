import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * `X-Chat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1` per secret
 * (the first one current), as Stripe does: a receiver rotating secrets accepts any `v1` it knows,
 * and one that checks `t` against its clock refuses a replayed request.
 */
export function signature(body: string, secrets: string[], t = Math.floor(Date.now() / 1000)): string {
  return [`t=${t}`, ...secrets.map((secret) => `v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`)].join(",");
}

/**
 * A receiver's check: true when one `v1` matches `secret` and `t` is within `toleranceSeconds` of
 * now. The same as the snippets in docs/server-api.md.
 */
export function verifySignature(header: string, body: string, secret: string, toleranceSeconds = 300, now = Date.now() / 1000): boolean {
  const parts = header.split(",").map((part) => part.split("=", 2) as [string, string]);
  const t = Number(parts.find(([key]) => key === "t")?.[1]);
  if (!Number.isInteger(t) || Math.abs(now - t) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac("sha256", secret).update(`${t}.${body}`).digest("hex"));
  return parts.some(([key, value]) => key === "v1" && value.length === expected.length && timingSafeEqual(Buffer.from(value), expected));
}
