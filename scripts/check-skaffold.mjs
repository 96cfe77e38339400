#!/usr/bin/env node
// Checks skaffold.yaml: valid against the skaffold/v4beta14 JSON Schema (ajv, draft-07), and
// consistent with the repository: the artifacts' Dockerfiles exist, every setValueTemplates key
// is a value the chart accepts (its schema refuses unknown keys), the values files exist, and
// every port-forward names an object the chart renders for that release.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv from "ajv";
import { parse } from "yaml";
import { helmPath, render, repoRoot } from "./lib/helm.mjs";

const problems = [];
// SKAFFOLD_SCHEMA: another copy of the schema (the GitHub workflow downloads skaffold's own).
const schemaPath = [
  process.env.SKAFFOLD_SCHEMA,
  join(repoRoot, "../shared/schemas/skaffold-v4beta14.json"),
  "/work/shared/schemas/skaffold-v4beta14.json",
].find((p) => p && existsSync(p));
if (!schemaPath) {
  console.error("check-skaffold: FAIL: shared/schemas/skaffold-v4beta14.json not found beside the repository (or set SKAFFOLD_SCHEMA)");
  process.exit(1);
}
const config = parse(readFileSync(join(repoRoot, "skaffold.yaml"), "utf8"));
if (config.apiVersion !== "skaffold/v4beta14") problems.push(`apiVersion is ${config.apiVersion}, expected skaffold/v4beta14`);
const ajv = new Ajv({ strict: false, allErrors: true });
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
if (!validate(config)) {
  for (const e of validate.errors.slice(0, 20)) problems.push(`schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
}

const { bin } = helmPath();
const sections = [
  { where: "", build: config.build, deploy: config.deploy },
  ...(config.profiles ?? []).map((p) => ({ where: `profile ${p.name}: `, build: p.build, deploy: p.deploy })),
];
const artifacts = config.build?.artifacts ?? [];
const images = artifacts.map((a) => a.image).sort();
if (JSON.stringify(images) !== JSON.stringify(["chat-platform/chat", "chat-platform/notifier"])) problems.push(`artifacts are ${images}`);
for (const a of artifacts) {
  const df = join(repoRoot, a.context ?? ".", a.docker?.dockerfile ?? "Dockerfile");
  if (!existsSync(df)) problems.push(`artifact ${a.image}: ${df} does not exist`);
}
let releases = 0;
for (const { where, deploy } of sections) {
  for (const r of deploy?.helm?.releases ?? []) {
    releases++;
    if (!existsSync(join(repoRoot, r.chartPath))) problems.push(`${where}release ${r.name}: no chart at ${r.chartPath}`);
    for (const f of r.valuesFiles ?? []) if (!existsSync(join(repoRoot, f))) problems.push(`${where}release ${r.name}: no values file ${f}`);
    const templates = r.setValueTemplates ?? {};
    for (const img of images) {
      const key = img.replace(/[^A-Za-z0-9]/g, "_");
      if (!Object.values(templates).some((v) => String(v).includes(`IMAGE_REPO_${key}`)))
        problems.push(`${where}release ${r.name}: ${img} repository not wired`);
      if (!Object.values(templates).some((v) => String(v).includes(`IMAGE_TAG_${key}`))) problems.push(`${where}release ${r.name}: ${img} tag not wired`);
    }
    // Every key must exist in the chart: render with each template replaced by a dummy value.
    const args = ["--namespace", r.namespace ?? "default"];
    for (const f of r.valuesFiles ?? []) args.push("-f", join(repoRoot, f));
    for (const [k, v] of Object.entries(r.setValues ?? {})) args.push("--set", `${k}=${v}`);
    for (const k of Object.keys(templates)) args.push("--set", `${k}=${k.endsWith("repository") ? "example/image" : "dummy"}`);
    let objects;
    try {
      objects = render(r.name, args, { bin });
    } catch (err) {
      problems.push(`${where}release ${r.name}: the chart refuses its values: ${err.message}`);
      continue;
    }
    const names = new Set(objects.map((o) => `${o.kind.toLowerCase()}/${o.metadata.name}`));
    for (const pf of config.portForward ?? []) {
      if (!names.has(`${pf.resourceType}/${pf.resourceName}`))
        problems.push(`portForward ${pf.resourceType}/${pf.resourceName} is not rendered by release ${r.name}`);
    }
  }
}
if (!releases) problems.push("no helm releases");
if (!(config.profiles ?? []).some((p) => p.name === "kind")) problems.push("no kind profile");
if (!(config.portForward ?? []).some((pf) => pf.port === 9100)) problems.push("no port-forward for the metrics port");

if (problems.length) {
  console.error(`check-skaffold: FAILED:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(
  `check-skaffold: OK (valid skaffold/v4beta14 by ${schemaPath.replace(/.*\/shared\//, "shared/")}, ${artifacts.length} artifacts, ${releases} helm releases, ${config.portForward.length} port-forwards)`,
);
