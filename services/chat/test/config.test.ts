import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, repoRoot, startService, stopAllServices } from "@chat/testkit";

/** What a person reads when the process refuses to start: no stack trace, ever. */
function expectNoStack(output: string): void {
  expect(output).not.toMatch(/^\s+at |node:internal|Error:/m);
}

describe("configuration at start", () => {
  afterAll(stopAllServices);

  it("exits non-zero with one clear line per bad variable", async () => {
    const chat = await startService("chat", {
      wait: false,
      env: { PORT: "nope", REDIS_URL: "http://redis:6379", LOG_LEVEL: "chatty", MAX_TEXT_LENGTH: "0" },
    });
    expect(await chat.exited).toBe(1);
    const output = chat.rawOutput();
    expect(output).toMatch(/^chat: invalid configuration:/);
    expect(output).toMatch(/PORT: must be a number/);
    expect(output).toMatch(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(output).toMatch(/LOG_LEVEL: must be one of/);
    expect(output).toMatch(/MAX_TEXT_LENGTH: must be at least 1/);
  });

  it.each([
    ["jwt without a key", { AUTH_MODE: "jwt" }, /AUTH_MODE: jwt needs exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL; none is set$/m],
    ["jwt with two keys", { AUTH_MODE: "jwt", JWT_SECRET: "x".repeat(40), JWT_JWKS_URL: "https://id.example/jwks" }, /got JWT_SECRET and JWT_JWKS_URL$/m],
    ["a short JWT_SECRET", { AUTH_MODE: "jwt", JWT_SECRET: "short" }, /JWT_SECRET: must be at least 32 characters/],
    [
      "CORS_ORIGINS=*",
      { CORS_ORIGINS: "*" },
      /^chat: invalid configuration:\n {2}- CORS_ORIGINS: \* is not allowed: list the origins, e.g. https:\/\/chat.example.com \(got "\*"\)\n$/,
    ],
    [
      "a JWT_PUBLIC_KEY that is not a key",
      { AUTH_MODE: "jwt", JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\\nnot a key\\n-----END PUBLIC KEY-----" },
      /^ {2}- JWT_PUBLIC_KEY: must be an RSA or EC public key in PEM/m,
    ],
    ["a JWT_JWKS_URL that is not http(s)", { AUTH_MODE: "jwt", JWT_JWKS_URL: "ftp://id.example/jwks" }, /^ {2}- JWT_JWKS_URL: must be an http\(s\) URL/m],
    [
      "a REDIS_TLS_CA_FILE that is not PEM",
      { REDIS_TLS_CA_FILE: join(repoRoot, "README.md") },
      /^ {2}- REDIS_TLS_CA_FILE: must be a PEM file of CA certificates/m,
    ],
    [
      "a REDIS_TLS_CA_FILE that does not exist",
      { REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" },
      /^ {2}- REDIS_TLS_CA_FILE: must name a readable file, and reading it failed with ENOENT/m,
    ],
    ["PORT equal to PROBE_PORT", { PORT: "9555", PROBE_PORT: "9555" }, /^ {2}- PORT: must differ from PROBE_PORT \(both are 9555\)$/m],
    ["an unknown AUTH_MODE", { AUTH_MODE: "none" }, /AUTH_MODE: must be open or jwt/],
    ["a negative rate limit", { RATE_LIMIT_CONNECTIONS_PER_IP: "-1" }, /RATE_LIMIT_CONNECTIONS_PER_IP/],
    ["a negative outbound budget", { MAX_CLIENT_BUFFER_BYTES: "-1" }, /MAX_CLIENT_BUFFER_BYTES/],
    ["an unknown FAST_PATH", { FAST_PATH: "on" }, /FAST_PATH: must be auto or off/],
    ["a token lifetime beyond the denylist's reach", { JWT_MAX_LIFETIME_SECONDS: "40000000" }, /JWT_MAX_LIFETIME_SECONDS: must be at most 31622400/],
    ["DEBUG_ENDPOINTS=yes", { DEBUG_ENDPOINTS: "yes" }, /DEBUG_ENDPOINTS: must be 0, 1, true or false/],
    ["a TRUST_PROXY hop count over 10", { TRUST_PROXY: "11" }, /TRUST_PROXY: a hop count must be at most 10/],
  ])("refuses to start with %s, in lines a person can act on", async (_name, env, message) => {
    const chat = await startService("chat", { wait: false, env });
    expect(await chat.exited).toBe(1);
    expect(chat.rawOutput()).toMatch(message);
    expectNoStack(chat.rawOutput());
    // One line per variable, and never a doubled parenthesis.
    expect(chat.rawOutput()).not.toMatch(/\) \(/);
  });

  it("reports a bad variable and a broken rule between variables in the same run", async () => {
    const chat = await startService("chat", { wait: false, env: { PORT: "abc", AUTH_MODE: "jwt" } });
    expect(await chat.exited).toBe(1);
    expect(chat.rawOutput()).toBe(
      [
        "chat: invalid configuration:",
        '  - PORT: must be a number (got "abc")',
        "  - AUTH_MODE: jwt needs exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL; none is set",
        "",
      ].join("\n"),
    );
  });

  describe("a port that is taken", () => {
    let squatter: Server;
    let taken: number;

    afterAll(() => new Promise<void>((resolve) => squatter.close(() => resolve())));

    it.each(["PORT", "PROBE_PORT"])("ends with one line naming %s and the port, then exit 1", async (variable) => {
      if (!squatter) {
        taken = await freePort();
        squatter = createServer();
        await new Promise<void>((resolve) => squatter.listen(taken, "0.0.0.0", resolve));
      }
      const chat = await startService("chat", { wait: false, env: { [variable]: String(taken) } });
      expect(await chat.exited).toBe(1);
      expect(chat.rawOutput()).toBe(`chat: ${variable} ${taken} is already in use by another process: choose another\n`);
    });
  });

  it("warns loudly when anyone can connect under any name", async () => {
    const chat = await startService("chat");
    expect(chat.logs.some((l) => l.level === 40 && /AUTH_MODE=open/.test(l.msg))).toBe(true);
  });

  it("runs as a single node without REDIS_URL, and says so", async () => {
    const chat = await startService("chat");
    expect(chat.logs.some((l) => /REDIS_URL is not set/.test(l.msg))).toBe(true);
    const page = await fetch(chat.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="app.js"></script>');
  });
});
