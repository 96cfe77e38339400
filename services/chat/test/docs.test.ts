import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, startService, stopAllServices, waitFor, type RedisServer, type ServiceProcess } from "@chat/testkit";
import { matchesInOrder, readExamples, runShell, startScript, type Example } from "./doc-examples.js";

/**
 * Every example of the user-facing docs runs against a real chat pod, notifier and Redis, and
 * must answer what the page says (conventions in doc-examples.ts). A change of behaviour breaks
 * this test, not a user who copies an example.
 */
const PAGES = ["docs/protocol.md", "docs/notifier.md", "services/client/README.md", "docs/server-api.md"];
const KEY = "docs-test-key-0123456789abcdef";
/** How long an example may take to print what the page says (a busy machine included). */
// Generous: CI runs the test files in parallel on 2 cores, and a stream event waits for the notifier's poll.
const EXPECT_WITHIN_MS = 40_000;

let redis: RedisServer;
let chat: ServiceProcess;
let notifier: ServiceProcess;

/** The page's host names stand for the processes this test started. */
function localize(code: string): string {
  return code
    .replaceAll("https://chat.example.com", chat.url)
    .replaceAll("http://localhost:3000", chat.url)
    .replaceAll("http://localhost:3001", notifier.url)
    .replaceAll("http://notifier:3001", notifier.url)
    .replace(/^KEY=\.\.\./m, 'KEY="$KEY"');
}

function title(example: Example): string {
  const first = example.code.split("\n").find((l) => l.trim() && !l.trim().startsWith("#") && !l.trim().startsWith("//")) ?? "";
  return `${example.where} ${first.trim().slice(0, 70)}`;
}

/** Reads only: safe to run again while waiting for an effect (a stream entry being consumed). */
const readOnly = (command: string) => !/\bXADD\b|-X POST|\bDEL\b|\bXTRIM\b/.test(command);

async function runSh(example: Example): Promise<void> {
  const preamble = [`export KEY=${KEY}`, `redis-cli() { command redis-cli -u ${redis.url} --no-raw "$@"; }`].join("\n");
  for (const step of example.steps) {
    const command = localize(step.command);
    let last = await runShell(command, preamble);
    if (readOnly(command)) {
      const deadline = Date.now() + EXPECT_WITHIN_MS;
      while (!matchesInOrder(last.output, step.expect) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        last = await runShell(command, preamble);
      }
    }
    const context = `${example.where}\n$ ${command}\n${last.output}`;
    expect(last.code, context).toBe(0);
    expect(last.output, context).not.toMatch(/^\(error\)|^curl: \(\d+\)/m);
    expect(matchesInOrder(last.output, step.expect), `${context}\nexpected, in order:\n${step.expect.join("\n")}`).toBe(true);
  }
}

/** What `<!-- docs-test: socket -->` examples continue: the page's "Connecting" example. */
const SOCKET_PRELUDE = `import { io } from "socket.io-client";
const socket = io("https://chat.example.com", { auth: { name: "Ann" }, transports: ["websocket"] });
`;

async function runJs(example: Example): Promise<void> {
  expect(example.expect, `${example.where}: a JS example says what it prints (// → ...)`).not.toEqual([]);
  const script = await startScript(example, localize((example.socket ? SOCKET_PRELUDE : "") + example.code));
  try {
    await waitFor(() => matchesInOrder(script.output(), example.expect), {
      timeoutMs: EXPECT_WITHIN_MS,
      what: () => `${example.where} to print, in order:\n${example.expect.join("\n")}\nit printed:\n${script.output()}`,
    });
  } finally {
    script.kill();
  }
}

beforeAll(async () => {
  redis = await startRedis();
  [chat, notifier] = await Promise.all([
    startService("chat", { pod: "docs-chat", env: { REDIS_URL: redis.url } }),
    // Webhooks on (to a port nobody listens on), so docs/server-api.md's replay route exists.
    startService("notifier", {
      pod: "docs-notifier",
      env: { REDIS_URL: redis.url, NOTIFIER_API_KEYS: KEY, WEBHOOK_URLS: "http://127.0.0.1:9/hook", WEBHOOK_SECRET: "docs-webhook-secret-0123" },
    }),
  ]);
});

afterAll(async () => {
  await stopAllServices();
  await redis?.dispose();
});

describe("the examples in the docs", () => {
  it.each(PAGES)("%s has examples, and every one it does not run says why", (page) => {
    const examples = readExamples(page);
    expect(examples.length).toBeGreaterThan(0);
    for (const example of examples) if (example.skip !== undefined) expect(example.skip, example.where).not.toBe("");
  });
});

for (const page of PAGES) {
  describe.sequential(`every example of ${page}, run against real processes, answers what the page says`, () => {
    const examples = readExamples(page).filter((e) => e.skip === undefined);
    const listeners = examples.filter((e) => e.listens);
    const started: Awaited<ReturnType<typeof startScript>>[] = [];

    beforeAll(async () => {
      // Listening examples (clients) first: the page's other examples send what they receive.
      for (const example of listeners) {
        const script = await startScript(example, localize(example.code));
        started.push(script);
        await waitFor(() => matchesInOrder(script.output(), example.expect.slice(0, 1)), {
          timeoutMs: EXPECT_WITHIN_MS,
          what: () => `${example.where} to print "${example.expect[0]}"; it printed:\n${script.output()}`,
        });
      }
    });

    afterAll(() => {
      for (const script of started) script.kill();
    });

    for (const example of examples.filter((e) => !e.listens)) {
      it(title(example), () => (example.lang === "sh" ? runSh(example) : runJs(example)));
    }

    listeners.forEach((example, i) => {
      it(`${title(example)} (a client) receives what the page says`, async () => {
        const script = started[i]!;
        await waitFor(() => matchesInOrder(script.output(), example.expect), {
          timeoutMs: EXPECT_WITHIN_MS,
          what: () => `${example.where} to print, in order:\n${example.expect.join("\n")}\nit printed:\n${script.output()}`,
        });
      });
    });
  });
}
