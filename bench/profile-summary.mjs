// Sums self time per function over every .cpuprofile in a directory (node --cpu-prof output),
// optionally only the samples taken within a window of process.hrtime (µs), e.g. one measured run.
// Percentages are of the busy samples: "(idle)" is counted apart.
// Usage: node bench/profile-summary.mjs <dir> [top]
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

function where(url, line) {
  if (!url) return "";
  const short = url
    .replace(/^file:\/\//, "")
    .replace(/^.*?\/node_modules\//, "")
    .replace(/^.*?\/services\//, "services/");
  return `${short}:${line + 1}`;
}

function packageOf(url, name) {
  if (!url) return name.startsWith("(") ? name : "(native: syscalls, V8 builtins)";
  if (url.startsWith("node:")) return "node core";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.includes("/services/")) return `@chat/${/services\/([^/]+)/.exec(url)[1]}`;
  return url;
}

export function summarizeProfiles(dir, top = 25, window) {
  const byFunction = new Map();
  const byPackage = new Map();
  let idleUs = 0;
  let busyUs = 0;
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8"));
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map();
    // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0;
      if (window && (t < window.fromUs || t > window.toUs)) continue;
      const id = profile.samples[i];
      self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
    }
    for (const [id, us] of self) {
      const { callFrame } = nodes.get(id);
      const name = callFrame.functionName || "(anonymous)";
      if (name === "(idle)") {
        idleUs += us;
        continue;
      }
      busyUs += us;
      const key = `${name}\u0000${where(callFrame.url, callFrame.lineNumber)}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + us);
      const pkg = packageOf(callFrame.url, name);
      byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    }
  }
  const pct = (us) => +((100 * us) / busyUs).toFixed(2);
  return {
    files: files.length,
    window: window ?? null,
    busyMs: Math.round(busyUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    functions: [...byFunction]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, us]) => {
        const [name, at] = key.split("\u0000");
        return { name, where: at, selfMs: Math.round(us / 1000), pct: pct(us) };
      }),
    packages: [...byPackage]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 1000), pct: pct(us) })),
  };
}

export function printSummary(s) {
  console.log(`${s.files} profiles: ${s.busyMs} ms busy, ${s.idleMs} ms idle${s.window ? " (within the measured run)" : ""}; % of busy time`);
  for (const f of s.functions) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${String(f.selfMs).padStart(7)} ms  ${f.name}  ${f.where}`);
  console.log("By package:");
  for (const p of s.packages) console.log(`  ${p.pct.toFixed(1).padStart(5)}%  ${p.name}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printSummary(summarizeProfiles(process.argv[2], Number(process.argv[3] ?? 25)));
