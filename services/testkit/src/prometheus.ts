import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./wait.js";
import { killOnExit } from "./children.js";

/** A real Prometheus (Debian's `prometheus`, from PATH) scraping the given targets every second. */
export interface PrometheusServer {
  url: string;
  /** Runs an instant query; returns the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** The single value of a query that sums to one series, or undefined while there is none. */
  scalar(expr: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

export interface ScrapeTarget {
  /** `host:port` of a `/metrics` endpoint. */
  address: string;
  /** Labels Kubernetes service discovery would add (pod, namespace). */
  labels: Record<string, string>;
}

export async function startPrometheus(targets: ScrapeTarget[]): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), "chat-prometheus-"));
  const port = await freePort();
  const config = {
    global: { scrape_interval: "1s", evaluation_interval: "1s" },
    scrape_configs: [
      {
        job_name: "chat-platform",
        static_configs: targets.map((t) => ({ targets: [t.address], labels: t.labels })),
      },
    ],
  };
  writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config)); // JSON is YAML
  const child: ChildProcess = spawn(
    "prometheus",
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  killOnExit(child);
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", (err) => (output += `cannot start prometheus (apt-get install prometheus): ${err.message}`));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200, {
    timeoutMs: 30_000,
    what: () => `prometheus to be ready\n${output}`,
  });

  type Sample = { metric: Record<string, string>; value: [number, string] };
  async function query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error}`);
    return body.data!.result;
  }
  return {
    url,
    query,
    async scalar(expr) {
      const result = await query(expr);
      return result.length === 1 ? Number(result[0]!.value[1]) : undefined;
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `promtool check metrics` on a metrics text: the problems it reports (empty when clean). */
export function promtoolCheck(metricsText: string): string {
  const result = spawnSync("promtool", ["check", "metrics"], { input: metricsText, encoding: "utf8" });
  if (result.error) throw new Error(`cannot run promtool (apt-get install prometheus): ${result.error.message}`);
  return `${result.stdout}${result.stderr}`.trim() + (result.status === 0 ? "" : `\n(exit ${result.status})`);
}
