/**
 * How a room log entry's body is stored, and what an encoder may refuse. Apart from room-log.ts
 * so that the storage format is one small, testable thing.
 */

/** A payload the encoder (JSON, or Socket.IO's msgpack) cannot take: every retry would fail the same way. */
export class UnencodableError extends Error {
  override name = "UnencodableError";
}

/** Runs `encode`, turning what it throws (a stack overflow on deep nesting, say) into an UnencodableError. */
export function encodeOrRefuse<T>(encode: () => T): T {
  try {
    return encode();
  } catch (err) {
    throw new UnencodableError(`cannot be encoded (${(err as Error).message})`);
  }
}

const SHORT_ESCAPES: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
const ESCAPE_OF: Record<string, string> = { "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
/** JSON.stringify's escapes, one at a time, so `\\u0001` (an escaped backslash, then text) is never misread. */
const JSON_ESCAPE = /\\(?:u00([01][0-9a-f])|([bfnrt])|[^])/g;
// eslint-disable-next-line no-control-regex -- control characters are exactly what these find
const CONTROL = /[\u0000-\u001f]/g;
// eslint-disable-next-line no-control-regex
const HAS_CONTROL = /[\u0000-\u001f]/;

/**
 * The body as stored: JSON, except that control characters inside strings are kept as their own
 * UTF-8 byte instead of a 6-byte `\u0001` escape (4000 of them were 24 KB per message). Quotes,
 * backslashes and lone surrogates stay escaped. Not valid JSON when it holds a control character:
 * `decodeStoredBody` restores the escapes first.
 */
export function encodeStoredBody(body: unknown): string {
  const json = JSON.stringify(body);
  if (!json.includes("\\")) return json;
  return json.replace(JSON_ESCAPE, (escape, hex: string | undefined, short: string | undefined) =>
    hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : short !== undefined ? SHORT_ESCAPES[short]! : escape,
  );
}

/**
 * Reads what `encodeStoredBody` wrote, and entries stored before it as plain JSON (those hold no
 * raw control character, so they parse unchanged): a rolling upgrade loses nothing. Throws on
 * anything else.
 */
export function decodeStoredBody(stored: string): unknown {
  if (!HAS_CONTROL.test(stored)) return JSON.parse(stored);
  // JSON allows no raw control character outside strings either, so every one came from a string.
  return JSON.parse(stored.replace(CONTROL, (c) => ESCAPE_OF[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

/** What a body takes in a room log: the bytes `encodeStoredBody` writes, which storage quotas count. */
export function storedBodyBytes(body: unknown): number {
  return Buffer.byteLength(encodeStoredBody(body));
}
