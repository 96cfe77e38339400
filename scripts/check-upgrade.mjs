#!/usr/bin/env node
// Day-two checks of the chart, offline: renders a release before and after each kind of upgrade
// with the real helm and asserts which pod templates change (and so roll) and which stay the same.
//  - a chart + app version bump: the Redis pod template is identical (no version labels on it);
//  - a rotated JWT secret: the chat template changes, Redis and notifier do not;
//  - a rotated Redis password (default user or the services' ACL user): Redis, chat and notifier
//    all change, so they roll together;
//  - a rotated notifier API key: the notifier only; a chat setting: the chat only;
//  - the checksum/secrets of each pod matches the Secret rendered beside it (one value per render);
//  - an upgrade that cannot see a generated Secret (helm template --is-upgrade, as under Argo CD)
//    fails with a message naming existingSecret; with the values given it renders.
// Exits 1 with one line per problem.
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chartDir, helm, helmPath, parseManifests } from "./lib/helm.mjs";

const { bin } = helmPath();
const problems = [];
const problem = (msg) => problems.push(msg);

const secrets = {
  "redis.auth.password": "default-user-password-0123456789",
  "redis.auth.servicePassword": "service-user-password-012345678",
  "redis.auth.producerPassword": "producer-password-0123456789abc",
  "auth.jwt.secret": "jwt-secret-0123456789abcdef0123456789abcdef",
  "notifier.apiKeys.keys": "{notifier-key-0123456789abcdef}",
};
const setArgs = (values) => Object.entries(values).flatMap(([k, v]) => ["--set", `${k}=${v}`]);

function renderChart(dir, values, extra = []) {
  const res = helm(["template", "chat", dir, "--namespace", "chat", ...setArgs(values), ...extra], { bin });
  if (res.status !== 0) throw new Error(`helm template failed:\n${res.stderr}`);
  return parseManifests(res.stdout);
}

/** The pod templates by component: chat, notifier, redis. */
function templates(objects) {
  const out = {};
  for (const o of objects) if (o.kind === "Deployment" || o.kind === "StatefulSet") out[o.metadata.labels["app.kubernetes.io/component"]] = o.spec.template;
  return out;
}

const before = renderChart(chartDir, secrets);
const base = templates(before);
for (const c of ["chat", "notifier", "redis"]) if (!base[c]) problem(`no ${c} pod template rendered`);

// Every pod template: no labels that change with the chart or app version.
for (const [c, t] of Object.entries(base))
  for (const label of ["helm.sh/chart", "app.kubernetes.io/version"])
    if (t.metadata.labels?.[label]) problem(`${c} pod template carries ${label}: a version bump would restart it`);

// checksum/secrets agrees with the Secrets rendered in the same release.
{
  const secretData = (suffix) => before.find((o) => o.kind === "Secret" && o.metadata.name === `chat${suffix}`)?.data ?? {};
  const text = (data) =>
    Object.entries(data)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n");
  const redis = secretData("-redis");
  const order = ["redis-password", "service-password", "producer-password"];
  const redisText = text(Object.fromEntries(order.filter((k) => k in redis).map((k) => [k, redis[k]])));
  const expect = {
    redis: [redisText],
    chat: [redisText, text(secretData("-auth"))],
    // With notifier.webhooks on, the webhook signing Secret too.
    notifier: [
      redisText,
      text(secretData("-notifier")),
      ...(before.some((o) => o.kind === "Secret" && o.metadata.name === "chat-notifier-webhooks") ? [text(secretData("-notifier-webhooks"))] : []),
    ],
  };
  for (const [c, parts] of Object.entries(expect)) {
    const sum = createHash("sha256").update(parts.join("\n")).digest("hex");
    if (base[c]?.metadata.annotations?.["checksum/secrets"] !== sum) problem(`${c}: checksum/secrets does not match the Secrets rendered beside it`);
  }
}

function expectRolls(what, after, rolls) {
  const now = templates(after);
  for (const c of ["chat", "notifier", "redis"]) {
    const changed = JSON.stringify(now[c]) !== JSON.stringify(base[c]);
    const want = rolls.includes(c);
    if (changed !== want)
      problem(`${what}: the ${c} pod template ${changed ? "changes" : "stays the same"}, it must ${want ? "change (roll)" : "stay the same"}`);
  }
  console.log(`check-upgrade: ${what}: rolls ${rolls.join(", ") || "nothing"}`);
}

// A chart and app version bump, from a copy of the chart.
const bumped = mkdtempSync(join(tmpdir(), "chart-bump-"));
try {
  cpSync(chartDir, bumped, { recursive: true });
  const chartYaml = join(bumped, "Chart.yaml");
  writeFileSync(chartYaml, readFileSync(chartYaml, "utf8").replace(/^version: .*$/m, "version: 99.0.0"));
  expectRolls("chart version bump", renderChart(bumped, secrets), []);
  writeFileSync(chartYaml, readFileSync(chartYaml, "utf8").replace(/^appVersion: .*$/m, 'appVersion: "99.0.0"'));
  // The app version is the chat and notifier image tag: those roll, Redis does not.
  expectRolls("chart + app version bump", renderChart(bumped, secrets), ["chat", "notifier"]);
} finally {
  rmSync(bumped, { recursive: true, force: true });
}

expectRolls("rotated JWT secret", renderChart(chartDir, { ...secrets, "auth.jwt.secret": "rotated-jwt-secret-0123456789abcdef012345" }), ["chat"]);
expectRolls("rotated Redis password", renderChart(chartDir, { ...secrets, "redis.auth.password": "rotated-default-password-0123456" }), [
  "chat",
  "notifier",
  "redis",
]);
expectRolls("rotated Redis service password", renderChart(chartDir, { ...secrets, "redis.auth.servicePassword": "rotated-service-password-0123456" }), [
  "chat",
  "notifier",
  "redis",
]);
expectRolls(
  "rotated notifier API key",
  renderChart(chartDir, { ...secrets, "notifier.apiKeys.keys": "{notifier-key-0123456789abcdef,next-key-0123456789abcdef}" }),
  ["notifier"],
);
expectRolls("a chat setting", renderChart(chartDir, { ...secrets, "chat.maxTextLength": "2000" }), ["chat"]);
expectRolls("a Redis setting", renderChart(chartDir, { ...secrets, "redis.appendfsync": "always" }), ["redis"]);

// An upgrade where lookup sees nothing (helm template, Argo CD, a deleted Secret) must not
// regenerate the secrets: it fails and names the way out.
{
  const res = helm(["template", "chat", chartDir, "--namespace", "chat", "--is-upgrade"], { bin });
  if (res.status === 0) problem("an upgrade without the generated Secrets in sight rendered new random ones");
  else if (!/existingSecret/.test(res.stderr)) problem(`an upgrade without the generated Secrets fails without naming existingSecret: ${res.stderr.trim()}`);
  const given = helm(["template", "chat", chartDir, "--namespace", "chat", "--is-upgrade", ...setArgs(secrets)], { bin });
  if (given.status !== 0) problem(`an upgrade with every secret given fails: ${given.stderr.trim()}`);
  const existing = helm(
    [
      "template",
      "chat",
      chartDir,
      "--namespace",
      "chat",
      "--is-upgrade",
      "--set",
      "redis.auth.existingSecret=r",
      "--set",
      "auth.jwt.existingSecret=j",
      "--set",
      "notifier.apiKeys.existingSecret=n",
    ],
    { bin },
  );
  if (existing.status !== 0) problem(`an upgrade with existing Secrets fails: ${existing.stderr.trim()}`);
  console.log("check-upgrade: an upgrade that cannot see its generated Secrets fails; given values or existingSecrets render");
}

if (problems.length) {
  console.error(`\ncheck-upgrade: FAILED, ${problems.length} problem(s):`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log("check-upgrade: OK");
