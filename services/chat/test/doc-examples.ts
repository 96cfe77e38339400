import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ts from "typescript";
import { repoRoot } from "@chat/testkit";

/**
 * The examples of a Markdown page, read so that a test can run them (docs.test.ts).
 *
 * Conventions, which the pages follow:
 * - Every ```sh, ```js and ```ts block is an example and runs, unless an HTML comment right
 *   before it says `<!-- docs-test: skip: <why> -->`.
 * - In ```sh blocks, each command (with its `\` continuation lines) is one step. Comment lines
 *   `# → <text>` right after it are its expected output, one line each, in order; `…` matches
 *   anything. Other comments are prose.
 * - In ```js and ```ts blocks, `// → <text>` (on a line of its own or after code) is a line the
 *   example must print, in order.
 * - `<!-- docs-test: socket -->` before a JS block: it continues the page's "Connecting" example,
 *   so a connected `socket` (socket.io-client, open mode, as "Ann") is there to use.
 * - `<!-- docs-test: listens -->` before a JS block: it starts before the page's other examples
 *   (once it has printed its first expected line) and must print the rest by the end, e.g. a
 *   client that receives what the page's curl examples send.
 */
export interface Example {
  /** `docs/notifier.md:57` */
  where: string;
  lang: "sh" | "js" | "ts";
  code: string;
  /** Shell steps (sh only). */
  steps: Step[];
  /** Expected lines (js/ts). */
  expect: string[];
  skip?: string;
  listens: boolean;
  /** Runs with a connected `socket` defined before it. */
  socket: boolean;
}

export interface Step {
  command: string;
  expect: string[];
}

const ARROW = "→";

export function readExamples(relativePath: string): Example[] {
  const lines = readFileSync(join(repoRoot, relativePath), "utf8").split("\n");
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const close = lines.indexOf("```", i + 1);
    if (close < 0) throw new Error(`${relativePath}:${i + 1}: code block never closed`);
    const lang = open[1]!;
    const body = lines.slice(i + 1, close);
    const markers = markersBefore(lines, i);
    if (lang === "sh" || lang === "js" || lang === "ts") {
      examples.push({
        where: `${relativePath}:${i + 1}`,
        lang,
        code: body.join("\n"),
        steps: lang === "sh" ? shellSteps(body) : [],
        expect: lang === "sh" ? [] : body.flatMap((line) => (line.includes(`// ${ARROW} `) ? [line.slice(line.indexOf(`// ${ARROW} `) + 5).trim()] : [])),
        skip: markers
          .find((m) => m.startsWith("skip:"))
          ?.slice(5)
          .trim(),
        listens: markers.includes("listens"),
        socket: markers.includes("socket"),
      });
    }
    i = close;
  }
  return examples;
}

/** The `<!-- docs-test: ... -->` comments on the lines just before line `i` (blank lines between allowed). */
function markersBefore(lines: string[], i: number): string[] {
  const found: string[] = [];
  for (let j = i - 1; j >= 0; j--) {
    const line = lines[j]!.trim();
    if (line === "") continue;
    const marker = /^<!-- docs-test: (.+) -->$/.exec(line);
    if (!marker) break;
    found.push(marker[1]!.trim());
  }
  return found;
}

function shellSteps(body: string[]): Step[] {
  const steps: Step[] = [];
  let pending = "";
  for (const line of body) {
    const arrow = new RegExp(`^#\\s*${ARROW} ?(.*)$`).exec(line.trim());
    if (arrow) {
      const last = steps.at(-1);
      if (!last) throw new Error(`expected output before any command: ${line}`);
      last.expect.push(arrow[1]!);
      continue;
    }
    if (pending === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    pending += pending ? `\n${line}` : line;
    if (line.endsWith("\\")) continue;
    steps.push({ command: pending, expect: [] });
    pending = "";
  }
  if (pending) steps.push({ command: pending, expect: [] });
  return steps;
}

/** True when `expected` lines appear in `output`, in order, each as a whole line (`…`: anything). */
export function matchesInOrder(output: string, expected: string[]): boolean {
  const lines = output.split(/\r?\n/).map((l) => l.trimEnd());
  let at = 0;
  for (const want of expected) {
    const pattern = new RegExp(`^${want.split("…").map(escapeRegExp).join(".*")}$`);
    while (at < lines.length && !pattern.test(lines[at]!.trim())) at++;
    if (at === lines.length) return false;
    at++;
  }
  return true;
}

function escapeRegExp(text: string): string {
  return text.trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export interface Run {
  code: number | null;
  output: string;
}

/** Runs a shell step with bash; `preamble` defines the page's stand-ins (URLs, `redis-cli`). */
export function runShell(command: string, preamble: string, timeoutMs = 15_000): Promise<Run> {
  return collect(spawn("bash", ["-c", `${preamble}\n${command}`], { cwd: repoRoot, timeout: timeoutMs }));
}

/**
 * Starts a JS or TS example as an ES module inside the repository (so its imports resolve to the
 * workspace's packages); TypeScript is transpiled first, types dropped.
 */
export async function startScript(example: Example, source: string): Promise<{ output: () => string; exited: Promise<Run>; kill: () => void }> {
  const dir = join(repoRoot, "node_modules", ".docs-test");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${example.where.replace(/[^A-Za-z0-9]/g, "_")}.mjs`);
  const js =
    example.lang === "ts"
      ? ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
      : source;
  await writeFile(file, js);
  const child = spawn(process.execPath, [file], { cwd: repoRoot });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Run>((resolve) => child.once("close", (code) => resolve({ code, output })));
  return { output: () => output, exited, kill: () => void child.kill("SIGKILL") };
}

function collect(child: ReturnType<typeof spawn>): Promise<Run> {
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, output })));
}
