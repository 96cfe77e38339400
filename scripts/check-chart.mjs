#!/usr/bin/env node
// Checks the Helm chart (charts/chat) with the real helm v4 (pinned in devDependencies):
//  - helm lint --strict and helm template on the default values and on every ci/*-values.yaml;
//  - every rendered object validates against its Kubernetes schema (npm kubernetes-models);
//  - every workload (Deployment, StatefulSet, the helm test Pod) meets the restricted Pod Security
//    Standard (runAsNonRoot, readOnlyRootFilesystem, drop ALL, no privilege escalation, seccomp
//    RuntimeDefault, no host namespaces or hostPath) and sets resources;
//  - the env contract (scripts/lib/env-contract.mjs): every env name rendered for chat and
//    notifier is read by services/<svc>/src/config.ts, the services' own loadConfig accepts the
//    rendered environment, and every value arrives as the variable it documents;
//  - the runtime contract: probes on the probe port, grace period > preStop + readiness wait +
//    drain, probe port never on the public Service, one BUS_MODE for chat and notifier, REDIS_URL
//    without a password, Secrets for every credential, checksum/config annotations, Redis AOF +
//    PVC + requirepass, NetworkPolicies, PDBs, the HPA metrics, the helm test hook;
//  - values that must be refused are refused (CORS "*", a too-short grace period, ...);
//  - k8s/manifests/chat.yaml validates too; charts/chat/dashboards/chat.json is identical to
//    docs/grafana-dashboard.json; the values table in docs/deploy.md is up to date.
// Exits 1 with one line per problem.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkContract } from "./lib/chart-contract.mjs";
import { checkLabels, checkWorkload, validateObject } from "./lib/chart-rules.mjs";
import { checkEnvContract } from "./lib/env-contract.mjs";
import { chartDir, helm, helmPath, parseManifests, render, repoRoot } from "./lib/helm.mjs";
import { docsPath, docsWithTable, documentedValues } from "./lib/values-table.mjs";

const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);
const notices = new Set();
const { bin, version } = helmPath();
console.log(`check-chart: helm ${version} (${bin.replace(repoRoot, "")})`);

let envChecked = 0;
async function checkRendered(where, objects, values) {
  if (!objects.length) return problem(where, "rendered nothing");
  const seen = new Set();
  for (const obj of objects) {
    const key = `${obj.kind}/${obj.metadata?.name}`;
    if (seen.has(key)) problem(where, `${key} is rendered twice`);
    seen.add(key);
    await validateObject(where, obj, problem);
    checkLabels(where, obj, problem);
    checkWorkload(where, obj, problem);
  }
  checkContract(where, objects, values, problem);
  envChecked += await checkEnvContract(where, objects, values, problem, notices);
}

// ---------- run ----------
const { parse } = await import("yaml");
const defaults = parse(readFileSync(join(chartDir, "values.yaml"), "utf8"));
const merge = (a, b) => {
  if (b === null || typeof b !== "object" || Array.isArray(b)) return b;
  const out = { ...(a ?? {}) };
  for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
  return out;
};
const sets = [
  ["default values", null],
  ...readdirSync(join(chartDir, "ci"))
    .filter((f) => f.endsWith("-values.yaml"))
    .sort()
    .map((f) => [`ci/${f}`, join(chartDir, "ci", f)]),
];
if (sets.length < 3) problem("charts/chat/ci", "expected several ci/*-values.yaml files");
let rendered = 0;
for (const [name, file] of sets) {
  const fArgs = file ? ["-f", file] : [];
  const lint = helm(["lint", "--strict", chartDir, ...fArgs], { bin });
  if (lint.status !== 0) {
    problem(name, `helm lint --strict failed:\n${lint.stdout}${lint.stderr}`);
    continue;
  }
  let objects;
  try {
    objects = render("chat", fArgs, { bin });
  } catch (err) {
    problem(name, err.message);
    continue;
  }
  const values = merge(defaults, file ? (parse(readFileSync(file, "utf8")) ?? {}) : {});
  await checkRendered(name, objects, values);
  rendered += objects.length;
  console.log(`check-chart: ${name}: lint ok, ${objects.length} objects rendered and checked`);
}

// Values that must be refused.
const refused = [
  [["--set", "chat.corsOrigins={*}"], "CORS origin *"],
  [["--set", "chat.terminationGracePeriodSeconds=12"], "a grace period shorter than the drain"],
  [["--set", "redis.enabled=false"], "external Redis without a URL"],
  [["--set", "notifier.replicas=0"], "0 notifier replicas"],
  [["--set", "notifier.apiKeys.keys={short}"], "a notifier key under 16 characters"],
  [["--set", "externalRedis.url=redis://:pw@host:6379/0", "--set", "redis.enabled=false"], "a password inside REDIS_URL"],
  [["--set", "busMode=cluster"], "an unknown BUS_MODE"],
  [["--set", "chat.trustProxy=11"], "TRUST_PROXY above the service's limit of 10"],
  [["--set", "chat.rateLimits.messagesPerSecond=-1"], "a negative rate limit"],
  [["--set", "auth.jwt.publicKey=x", "--set", "auth.jwt.jwksUrl=https://a.example/jwks"], "two JWT key sources"],
  [["--set", "auth.jwt.jwksUrl=https://a.example/jwks", "--set", "auth.jwt.existingSecret=s"], "a JWT secret beside a JWKS URL"],
  [["--set", "auth.jwt.secret=short"], "an HS256 secret under 32 characters"],
  [["--set", "externalRedis.tlsCa.existingConfigMap=ca"], "a Redis CA with the in-cluster Redis (no TLS)"],
  [
    ["--set", "redis.enabled=false", "--set", "externalRedis.url=redis://h:6379/0", "--set", "externalRedis.tlsCa.existingSecret=ca"],
    "a Redis CA without rediss://",
  ],
  [
    [
      "--set",
      "redis.enabled=false",
      "--set",
      "externalRedis.url=rediss://h:6379/0",
      "--set",
      "externalRedis.tlsCa.existingSecret=ca",
      "--set",
      "externalRedis.tlsCa.existingConfigMap=ca",
    ],
    "two Redis CA sources",
  ],
  [["--set", "notifier.terminationGracePeriodSeconds=5"], "a notifier grace period not above its readiness wait"],
  [["--set", "chat.unknownKey=1"], "a misspelt value"],
  [["--set", "chat.autoscaling.enabled=true", "--set", "chat.autoscaling.targetCPUUtilizationPercentage=null"], "an HPA without a metric"],
  [
    ["--set", "chat.autoscaling.enabled=true", "--set", "chat.autoscaling.minReplicas=5", "--set", "chat.autoscaling.maxReplicas=3"],
    "HPA minReplicas > maxReplicas",
  ],
  [["--set", "global.unknown=1"], "an unknown global value"],
  [["--set", "redis.resources.limits.memory=0.5Gi"], "a Redis memory limit maxmemory cannot be derived from"],
  [["--set", "redis.acl.serviceUser=Chat User"], "an ACL user name with a space"],
  [["--set", "ingress.enabled=true"], "an Ingress without hosts"],
  [["--set", "gateway.enabled=true"], "an HTTPRoute without parentRefs"],
  [["--set", "chat.tls.enabled=true"], "TLS in the pod without a Secret"],
  [["--set", "chat.service.externalTrafficPolicy=Sometimes"], "an unknown externalTrafficPolicy"],
  [["--set", "redis.enabled=false", "--set", "externalRedis.mode=sentinel"], "mode sentinel without sentinels"],
  [["--set", "redis.enabled=false", "--set", "externalRedis.mode=cluster"], "mode cluster without nodes"],
  [
    [
      "--set",
      "redis.enabled=false",
      "--set",
      "externalRedis.mode=cluster",
      "--set",
      "externalRedis.cluster.nodes={r:6379}",
      "--set",
      "externalRedis.waitReplicas=1",
    ],
    "WAIT on a cluster",
  ],
  [["--set", "redis.enabled=false", "--set", "externalRedis.url=redis://h:6379/0", "--set", "externalRedis.tls=true"], "REDIS_TLS with a URL"],
];
for (const [args, what] of refused) {
  const res = helm(["template", "chat", chartDir, ...args], { bin });
  if (res.status === 0) problem("refusals", `${String(what)} (${args.join(" ")}) was accepted`);
}
console.log(`check-chart: ${refused.length} bad value sets refused`);

// The secrets generated once are kept (lookup) and the same value reaches every consumer.
{
  const objs = render("chat", [], { bin });
  const secretNames = objs
    .filter((o) => o.kind === "Secret")
    .map((o) => o.metadata.name)
    .sort();
  if (JSON.stringify(secretNames) !== JSON.stringify(["chat-auth", "chat-notifier", "chat-redis"]))
    problem("secrets", `generated Secrets are ${secretNames.join(",")}`);
  const redisKeys = Object.keys(objs.find((o) => o.kind === "Secret" && o.metadata.name === "chat-redis")?.data ?? {})
    .sort()
    .join(",");
  if (redisKeys !== "producer-password,redis-password,service-password") problem("secrets", `chat-redis holds ${redisKeys}`);
  const tpl = readFileSync(join(chartDir, "templates/_helpers.tpl"), "utf8");
  if (!/lookup "v1" "Secret"/.test(tpl)) problem("secrets", "generated Secrets are not looked up (kept across upgrades)");
  const ext = render(
    "chat",
    ["--set", "redis.auth.existingSecret=mine", "--set", "auth.jwt.existingSecret=jwt", "--set", "notifier.apiKeys.existingSecret=keys"],
    { bin },
  );
  if (ext.some((o) => o.kind === "Secret")) problem("secrets", "existingSecret values still render a Secret");
}

// Plain manifests rendered from the chart: validate them too.
try {
  const objs = parseManifests(readFileSync(join(repoRoot, "k8s/manifests/chat.yaml"), "utf8"));
  for (const obj of objs) {
    await validateObject("k8s/manifests", obj, problem);
    checkWorkload("k8s/manifests", obj, problem);
  }
  console.log(`check-chart: k8s/manifests/chat.yaml: ${objs.length} objects checked`);
} catch (err) {
  problem("k8s/manifests/chat.yaml", `${err.message} (run npm run k8s:render)`);
}

// The Grafana dashboard: the chart ships docs/grafana-dashboard.json, byte for byte.
try {
  const dash = readFileSync(join(chartDir, "dashboards/chat.json"), "utf8");
  JSON.parse(dash);
  if (readFileSync(join(repoRoot, "docs/grafana-dashboard.json"), "utf8") !== dash)
    problem("charts/chat/dashboards/chat.json", "differs from docs/grafana-dashboard.json: cp docs/grafana-dashboard.json charts/chat/dashboards/chat.json");
  const cm = render("chat", ["--set", "grafanaDashboard.enabled=true"], { bin }).find((o) => o.kind === "ConfigMap" && o.data?.["chat.json"]);
  if (cm?.data["chat.json"].trim() !== dash.trim()) problem("grafanaDashboard", "the dashboard ConfigMap does not carry charts/chat/dashboards/chat.json");
} catch (err) {
  problem("charts/chat/dashboards/chat.json", err.message);
}

// docs/deploy.md's values table: every value documented, the table up to date.
{
  const { rows, undocumented } = documentedValues();
  if (undocumented.length) problem("charts/chat/values.yaml", `values without a "# --" comment: ${undocumented.join(", ")}`);
  try {
    if (docsWithTable() !== readFileSync(docsPath, "utf8")) problem("docs/deploy.md", "the values table is out of date: run node scripts/values-table.mjs");
    else console.log(`check-chart: docs/deploy.md values table: ${rows.length} values, up to date`);
  } catch (err) {
    problem("docs/deploy.md", err.message);
  }
}

for (const n of notices) console.log(`check-chart: NOTICE: ${n}`);
console.log(`check-chart: env contract: ${envChecked} value → variable mappings verified with the services' own loadConfig`);
if (problems.length) {
  console.error(`\ncheck-chart: FAILED, ${problems.length} problem(s):`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`check-chart: OK (${sets.length} value sets, ${rendered} objects)`);
