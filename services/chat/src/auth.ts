import { createPublicKey, createSecretKey, webcrypto, type KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { displayName, type User } from "@chat/shared";
import { userId as userIdSchema } from "@chat/shared";
import type { ChatConfig } from "./config.js";
import { HandshakeError } from "./handshake-error.js";
import { openIdentity } from "./identity.js";

/** Who a connection is, and what its credentials allow. */
export interface Session {
  user: User;
  /** Milliseconds since the epoch when the token expires; the connection ends then. */
  expiresAt?: number;
  /** The token's id, by which it can be revoked. */
  jti?: string;
  /** Room names, or prefixes ending in `*`, the token allows; undefined: any room. */
  rooms?: string[];
  /** The token's `roles` claim: `moderator` may delete anyone's message. */
  roles?: string[];
}

/** Reads a handshake (its `auth` and headers) into a session, or throws a `HandshakeError`. */
export type Authenticator = (handshake: { auth: unknown; headers: Record<string, string | string[] | undefined> }) => Promise<Session>;

export function createAuthenticator(config: ChatConfig): Authenticator {
  if (config.AUTH_MODE === "open") return async ({ auth }) => ({ user: openIdentity(auth) });

  const { key, algorithms } = verificationKey(config);
  const options = { algorithms, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, requiredClaims: ["exp", "sub"] };
  const imported = typeof key === "function" ? undefined : asCryptoKey(key, algorithms[0]!);

  return async ({ auth, headers }) => {
    const token = tokenOf(auth, headers);
    let payload: JWTPayload;
    try {
      ({ payload } = typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, (await imported) ?? key, options));
    } catch (err) {
      throw jwtRefusal(err, options);
    }
    checkLifetime(payload, config);
    return sessionOf(payload);
  };
}

/** Clocks of the identity provider and the pods may disagree by this much. */
const CLOCK_TOLERANCE_SECONDS = 60;

/**
 * Revocation only works while the denylist can hold a token's entry: a token that lives longer
 * than `JWT_MAX_LIFETIME_SECONDS` (by default the denylist's reach) could come back to life, one
 * issued in the future is forged or from a broken clock, and without a `jti` it cannot be revoked.
 */
function checkLifetime(payload: JWTPayload, config: ChatConfig): void {
  const now = Math.floor(Date.now() / 1000);
  if (payload.iat !== undefined && payload.iat > now + CLOCK_TOLERANCE_SECONDS) {
    throw new HandshakeError("unauthorized", "the token's iat claim is in the future: check the issuer's clock");
  }
  const max = config.JWT_MAX_LIFETIME_SECONDS;
  if (payload.exp! - Math.min(payload.iat ?? now, now) > max + CLOCK_TOLERANCE_SECONDS) {
    throw new HandshakeError("unauthorized", `the token lives longer than this server allows (${max} s, JWT_MAX_LIFETIME_SECONDS): issue shorter-lived tokens`);
  }
  if (config.JWT_REQUIRE_JTI && (typeof payload.jti !== "string" || payload.jti === "")) {
    throw new HandshakeError("unauthorized", "the token has no jti claim, which this server requires so that tokens can be revoked");
  }
}

function verificationKey(config: ChatConfig): { key: KeyObject | JWTVerifyGetKey; algorithms: string[] } {
  if (config.JWT_SECRET) return { key: createSecretKey(Buffer.from(config.JWT_SECRET)), algorithms: ["HS256"] };
  if (config.JWT_PUBLIC_KEY) {
    const key = createPublicKey(config.JWT_PUBLIC_KEY.replace(/\\n/g, "\n"));
    return { key, algorithms: key.asymmetricKeyType === "ec" ? ["ES256"] : ["RS256"] };
  }
  // jose caches the key set and refetches it (at most every 30 s) when a token names a new key.
  return { key: createRemoteJWKSet(new URL(config.JWT_JWKS_URL!), { cooldownDuration: 30_000 }), algorithms: ["RS256", "ES256"] };
}

const WEBCRYPTO_ALGORITHMS: Record<string, webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.HmacImportParams> = {
  HS256: { name: "HMAC", hash: "SHA-256" },
  RS256: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  ES256: { name: "ECDSA", namedCurve: "P-256" },
};

/**
 * jose verifies with WebCrypto: handed a KeyObject, it imports it into a CryptoKey again on every
 * verify, about a third of an HS256 handshake's verification (bench/join-storm.mjs). Imported once
 * here instead; should the import fail (a key of another curve, say), the KeyObject is used as before.
 */
async function asCryptoKey(key: KeyObject, algorithm: string): Promise<webcrypto.CryptoKey | undefined> {
  const params = WEBCRYPTO_ALGORITHMS[algorithm]!;
  try {
    if (key.type === "secret") return await webcrypto.subtle.importKey("raw", key.export(), params, false, ["verify"]);
    return await webcrypto.subtle.importKey("spki", key.export({ format: "der", type: "spki" }), params, false, ["verify"]);
  } catch {
    return undefined;
  }
}

function tokenOf(auth: unknown, headers: Record<string, string | string[] | undefined>): string {
  const fromAuth = typeof auth === "object" && auth !== null ? (auth as { token?: unknown }).token : undefined;
  if (typeof fromAuth === "string" && fromAuth) return fromAuth.slice(0, 16_384);
  const header = headers.authorization;
  if (typeof header === "string" && /^Bearer \S+$/.test(header)) return header.slice(7, 7 + 16_384);
  throw new HandshakeError("unauthorized", "a token is required: auth.token (or an Authorization: Bearer header)");
}

/** What the expected claims are, to say so when a token's do not match. */
interface Expected {
  issuer?: string;
  audience?: string;
}

/**
 * A refusal a person can act on: what is wrong with the token and what to do, never a library
 * code. When the fault is ours (the key set cannot be fetched), `unavailable`: retrying helps.
 */
function jwtRefusal(err: unknown, expected: Expected): HandshakeError {
  const refuse = (message: string) => new HandshakeError("unauthorized", message);
  if (err instanceof errors.JWTExpired) return refuse("the token has expired: get a new one and reconnect");
  if (err instanceof errors.JWTClaimValidationFailed) return refuse(describeClaim(err, expected));
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return refuse("the token's signature is not valid: it was not signed with this server's key, or was changed");
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return refuse("the token is signed with an algorithm this server does not accept (HS256 with JWT_SECRET, RS256 or ES256 with a public key)");
  }
  if (err instanceof errors.JWKSNoMatchingKey) return refuse("the token is signed with a key this server does not know (its kid is not in the key set)");
  if (err instanceof errors.JWKSMultipleMatchingKeys) return refuse("the token does not say which key signed it (no kid) and the key set holds several");
  if (err instanceof errors.JWSInvalid) return refuse("the token is not a JWT: expected three base64url parts separated by dots");
  if (err instanceof errors.JWTInvalid) return refuse("the token's payload is not a JSON object of claims");
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError)) {
    return new HandshakeError("unavailable", "the server cannot fetch the keys to check tokens right now; retry shortly");
  }
  return refuse("the token could not be verified: get a new one and reconnect");
}

function describeClaim(err: InstanceType<typeof errors.JWTClaimValidationFailed>, expected: Expected): string {
  const got = (value: unknown) => JSON.stringify(value)?.slice(0, 100) ?? "nothing";
  if (err.reason === "missing") return `the token has no ${err.claim} claim, which this server requires`;
  if (err.claim === "iss") return `the token's iss claim is ${got(err.payload.iss)}; this server expects "${expected.issuer}"`;
  if (err.claim === "aud") return `the token's aud claim is ${got(err.payload.aud)}; this server expects "${expected.audience}"`;
  if (err.claim === "nbf") return "the token is not valid yet (its nbf is in the future): check the issuer's clock";
  if (err.claim === "iat") return "the token was issued in the future (its iat): check the issuer's clock";
  return `the token's ${err.claim} claim is not valid`;
}

function sessionOf(payload: JWTPayload): Session {
  const id = userIdSchema.safeParse(payload.sub);
  if (!id.success) throw new HandshakeError("unauthorized", "the token's sub claim must be a user id of 1-128 printable characters");
  const name = displayName.safeParse(payload.name ?? payload.sub);
  if (!name.success) throw new HandshakeError("unauthorized", "the token's name claim must be 1-32 printable characters");
  let rooms: string[] | undefined;
  if (payload.rooms !== undefined) {
    const list = payload.rooms;
    if (!Array.isArray(list) || list.length > 1000 || !list.every((r) => typeof r === "string" && r.length <= 65)) {
      throw new HandshakeError("unauthorized", "the token's rooms claim must be a list of room names or prefixes ending in *");
    }
    rooms = list as string[];
  }
  if (payload.jti !== undefined && (typeof payload.jti !== "string" || payload.jti.length > 256)) {
    throw new HandshakeError("unauthorized", "the token's jti claim must be a string of at most 256 characters");
  }
  // Tokens were accepted with any `roles` before it meant something: one that is not a list of
  // strings grants nothing rather than refusing the connection.
  const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === "string").slice(0, 32) : undefined;
  return { user: { id: id.data, name: name.data }, expiresAt: payload.exp! * 1000, jti: payload.jti, rooms, ...(roles && { roles }) };
}

/** Whether the session's token has `roles: ["moderator"]`. */
export function isModerator(session: Session): boolean {
  return session.roles?.includes("moderator") ?? false;
}

/** Whether a session's `rooms` claim lets it into `room`. */
export function mayJoin(session: Session, room: string): boolean {
  if (!session.rooms) return true;
  return session.rooms.some((allowed) => (allowed.endsWith("*") ? room.startsWith(allowed.slice(0, -1)) : room === allowed));
}
