import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";
import { API_KEY, OLD_API_KEY, startNotifier } from "./helpers.js";

const MAX_DATA = 1024;
const JSON_TYPE = { "content-type": "application/json" };
const AUTH = { authorization: `Bearer ${API_KEY}` };
const good = JSON.stringify({ type: "t", data: { ok: true } });

interface Case {
  name: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Blob;
  status: number;
  code: string;
}

const cases: Case[] = [
  // 401: no key, or not one of ours. Checked before anything else about the request.
  { name: "no Authorization header", headers: JSON_TYPE, body: good, status: 401, code: "unauthorized" },
  { name: "a wrong key", headers: { ...JSON_TYPE, authorization: "Bearer not-the-key-0123456789" }, body: good, status: 401, code: "unauthorized" },
  { name: "a prefix of a key", headers: { ...JSON_TYPE, authorization: `Bearer ${API_KEY.slice(0, -1)}` }, body: good, status: 401, code: "unauthorized" },
  { name: "a key with more after it", headers: { ...JSON_TYPE, authorization: `Bearer ${API_KEY}x` }, body: good, status: 401, code: "unauthorized" },
  { name: "the key without Bearer", headers: { ...JSON_TYPE, authorization: API_KEY }, body: good, status: 401, code: "unauthorized" },
  { name: "Basic auth", headers: { ...JSON_TYPE, authorization: `Basic ${btoa(`x:${API_KEY}`)}` }, body: good, status: 401, code: "unauthorized" },
  { name: "an empty Bearer", headers: { ...JSON_TYPE, authorization: "Bearer " }, body: good, status: 401, code: "unauthorized" },
  { name: "two keys joined", headers: { ...JSON_TYPE, authorization: `Bearer ${OLD_API_KEY},${API_KEY}` }, body: good, status: 401, code: "unauthorized" },
  { name: "no key on an unknown route", path: "/v1/nope", headers: JSON_TYPE, body: good, status: 401, code: "unauthorized" },

  // 415: anything but JSON.
  { name: "text/plain", headers: { ...AUTH, "content-type": "text/plain" }, body: good, status: 415, code: "unsupported_media_type" },
  {
    name: "a form",
    headers: { ...AUTH, "content-type": "application/x-www-form-urlencoded" },
    body: "type=t&data=1",
    status: 415,
    code: "unsupported_media_type",
  },
  // A Blob without a type, because fetch labels a string body text/plain on its own.
  { name: "no content type", headers: AUTH, body: new Blob([good]), status: 415, code: "unsupported_media_type" },
  {
    name: "an unsupported charset",
    headers: { ...AUTH, "content-type": "application/json; charset=latin1" },
    body: good,
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "an unknown content encoding",
    headers: { ...AUTH, ...JSON_TYPE, "content-encoding": "zip9" },
    body: good,
    status: 415,
    code: "unsupported_media_type",
  },

  // 400: JSON that breaks a rule, or is not JSON at all.
  { name: "invalid JSON", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t",', status: 400, code: "bad_request" },
  { name: "no body", headers: { ...AUTH, ...JSON_TYPE }, status: 400, code: "bad_request" },
  { name: "an empty body", headers: { ...AUTH, ...JSON_TYPE }, body: "", status: 400, code: "bad_request" },
  { name: "a JSON string", headers: { ...AUTH, ...JSON_TYPE }, body: '"hello"', status: 400, code: "bad_request" },
  { name: "a JSON array", headers: { ...AUTH, ...JSON_TYPE }, body: "[1]", status: 400, code: "bad_request" },
  { name: "null", headers: { ...AUTH, ...JSON_TYPE }, body: "null", status: 400, code: "bad_request" },
  { name: "no type", headers: { ...AUTH, ...JSON_TYPE }, body: '{"data":1}', status: 400, code: "bad_request" },
  { name: "a type with a space", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"a b","data":1}', status: 400, code: "bad_request" },
  { name: "a type too long", headers: { ...AUTH, ...JSON_TYPE }, body: JSON.stringify({ type: "t".repeat(65), data: 1 }), status: 400, code: "bad_request" },
  { name: "a type that is a number", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":5,"data":1}', status: 400, code: "bad_request" },
  { name: "no data", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t"}', status: 400, code: "bad_request" },
  { name: "an id with a slash", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t","data":1,"id":"a/b"}', status: 400, code: "bad_request" },
  {
    name: "an id too long",
    headers: { ...AUTH, ...JSON_TYPE },
    body: JSON.stringify({ type: "t", data: 1, id: "i".repeat(129) }),
    status: 400,
    code: "bad_request",
  },
  { name: "an empty id", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t","data":1,"id":""}', status: 400, code: "bad_request" },
  { name: "an unknown field", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t","data":1,"room":"x"}', status: 400, code: "bad_request" },
  { name: "a __proto__ field", headers: { ...AUTH, ...JSON_TYPE }, body: '{"type":"t","data":1,"__proto__":{"x":1}}', status: 400, code: "bad_request" },
  { name: "a room with a space", path: "/v1/rooms/a%20b/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a room with @", path: "/v1/rooms/%40user%3Aann/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a room too long", path: `/v1/rooms/${"r".repeat(65)}/events`, headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a user with a control character", path: "/v1/users/a%07b/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a user with a newline", path: "/v1/users/a%0Ab/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a user too long", path: `/v1/users/${"u".repeat(129)}/events`, headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },
  { name: "a malformed percent-encoding", path: "/v1/users/%E0%A4%A/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 400, code: "bad_request" },

  // 413: too large, whether the body or only its data.
  {
    name: "data over the limit",
    headers: { ...AUTH, ...JSON_TYPE },
    body: JSON.stringify({ type: "t", data: "x".repeat(MAX_DATA) }),
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "a body far over the limit",
    headers: { ...AUTH, ...JSON_TYPE },
    body: JSON.stringify({ type: "t", data: "x".repeat(200 * 1024) }),
    status: 413,
    code: "payload_too_large",
  },

  // 404: routes that do not exist.
  { name: "an unknown route", path: "/v1/nope", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 404, code: "not_found" },
  { name: "GET on an event route", method: "GET", path: "/v1/broadcast", headers: AUTH, status: 404, code: "not_found" },
  { name: "a path outside /v1", path: "/rooms/a/events", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 404, code: "not_found" },
  { name: "a room route without events", path: "/v1/rooms/a", headers: { ...AUTH, ...JSON_TYPE }, body: good, status: 404, code: "not_found" },
];

describe("HTTP errors", () => {
  let redis: RedisServer;
  let notifier: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    notifier = await startNotifier(redis.url, { NOTIFIER_MAX_DATA_BYTES: String(MAX_DATA) });
  });

  afterAll(async () => {
    await stopAllServices();
    await redis?.dispose();
  });

  it.each(cases)("answers $name with $status $code", async ({ method = "POST", path = "/v1/broadcast", headers, body, status, code }) => {
    const response = await fetch(notifier.url + path, { method, headers, body });
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const reply = (await response.json()) as { error: { code: string; message: string } };
    expect(reply).toEqual({ error: { code, message: expect.any(String) } });
    expect(reply.error.message.length).toBeLessThan(300);
    if (status === 401) expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("accepts either key of a rotation, and data right at the limit", async () => {
    const exact = JSON.stringify({ type: "t", data: "x".repeat(MAX_DATA - 2) });
    for (const key of [API_KEY, OLD_API_KEY]) {
      const response = await fetch(`${notifier.url}/v1/broadcast`, {
        method: "POST",
        headers: { ...JSON_TYPE, authorization: `bearer ${key}` },
        body: exact,
      });
      expect(response.status).toBe(202);
    }
  });

  const nested = (depth: number): unknown => {
    let data: unknown = 1;
    for (let i = 0; i < depth; i++) data = [data];
    return data;
  };

  it.each([
    ["no type", { data: 1 }, "type: is required"],
    ["a type that is a number", { type: 5, data: 1 }, "type: must be a string"],
    ["no data", { type: "t" }, "data: is required (any JSON value, null included)"],
    ["an extra field", { type: "t", data: 1, extra: 2 }, "unknown field(s): extra"],
    ["a bad id", { type: "t", data: 1, id: "a/b" }, "id: must be 1-128 characters of A-Z a-z 0-9 _ . : -"],
    ["data nested 33 deep", { type: "t", data: nested(33) }, "data: nests arrays or objects more than 32 deep"],
  ])("names the field in its 400 for %s, in the words the stream's dead letters use", async (_name, body, message) => {
    const response = await fetch(`${notifier.url}/v1/broadcast`, { method: "POST", headers: { ...AUTH, ...JSON_TYPE }, body: JSON.stringify(body) });
    expect({ status: response.status, body: await response.json() }).toEqual({ status: 400, body: { error: { code: "bad_request", message } } });
  });

  it("times each route under one name, the full path of its template", async () => {
    // One request per route, the unmatched one included, so that this test also runs alone.
    for (const path of ["/v1/broadcast", "/v1/rooms/r1/events", "/v1/users/u1/events", "/v1/nope"]) {
      await fetch(notifier.url + path, { method: "POST", headers: { ...AUTH, ...JSON_TYPE }, body: good });
    }
    const text = await (await fetch(`${notifier.probeUrl}/metrics`)).text();
    const routes = new Set([...text.matchAll(/^notifier_http_request_duration_seconds_count\{[^}]*route="([^"]+)"/gm)].map((m) => m[1]));
    expect([...routes].sort()).toEqual(["/v1/broadcast", "/v1/rooms/:room/events", "/v1/users/:userId/events", "unmatched"]);
  });

  it("stays up and logs no error for any of it", () => {
    expect(notifier.child.exitCode).toBeNull();
    expect(notifier.logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(notifier.rawOutput()).toBe("");
  });
});

describe("Redis down", () => {
  it("answers 503 unavailable, never a false 202, and recovers", async () => {
    const redis = await startRedis();
    try {
      const notifier = await startNotifier(redis.url);
      const send = () => fetch(`${notifier.url}/v1/broadcast`, { method: "POST", headers: { ...JSON_TYPE, ...AUTH }, body: good });
      await redis.stop();
      await notifier.waitForLog((l) => /redis connection lost/.test(l.msg));
      const down = await send();
      expect(down.status).toBe(503);
      expect(((await down.json()) as { error: { code: string } }).error.code).toBe("unavailable");
      expect((await fetch(`${notifier.probeUrl}/readyz`)).status).toBe(503);

      await redis.start();
      // Recovered is when a send is accepted again. (Not the "restored" log line: a connection whose
      // first reconnect finds the server back never logged an error, so it logs no restoration; a
      // loaded CI run waited 45 s for that line.) Until then every answer is still a 503.
      await waitFor(
        async () => {
          const status = (await send()).status;
          expect([202, 503]).toContain(status);
          return status === 202;
        },
        { timeoutMs: 45_000, intervalMs: 200, what: "a send accepted after Redis came back" },
      );
      await notifier.waitForLog((l) => /stream consumer resumed/.test(l.msg), 45_000);
      expect(notifier.child.exitCode).toBeNull();
    } finally {
      await stopAllServices();
      await redis.dispose();
    }
  }, 150_000);
});

describe("configuration at start", () => {
  afterAll(stopAllServices);

  it("exits non-zero naming every bad variable, without echoing keys", async () => {
    const notifier = await startService("notifier", {
      wait: false,
      env: { NOTIFIER_API_KEYS: "short-secret, ,also-short", NOTIFIER_BATCH_SIZE: "0" },
    });
    expect(await notifier.exited).toBe(1);
    const output = notifier.rawOutput();
    expect(output).toMatch(/^notifier: invalid configuration:/);
    expect(output).toMatch(/REDIS_URL: is required/);
    expect(output).toMatch(/NOTIFIER_API_KEYS: every key must be at least 16 characters/);
    expect(output).toMatch(/NOTIFIER_BATCH_SIZE: must be at least 1/);
    expect(output).not.toContain("short-secret");
  });

  it("requires at least one API key", async () => {
    const notifier = await startService("notifier", { wait: false, env: { REDIS_URL: "redis://127.0.0.1:1", NOTIFIER_API_KEYS: " , " } });
    expect(await notifier.exited).toBe(1);
    expect(notifier.rawOutput()).toMatch(/NOTIFIER_API_KEYS: must hold at least one key/);
  });
});
