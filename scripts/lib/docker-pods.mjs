// Runs the pods the chart renders as plain Docker containers, for scripts/topology-test.mjs: each
// pod spec is translated to `docker run` (user/group, read-only root, drop ALL, no new privileges,
// memory limit, command/args, env from ConfigMaps, Secrets decoded from the render and POD_NAME,
// emptyDir → tmpfs, ConfigMap volumes → read-only files, a PVC → a volume, Service names →
// network aliases). Everything created is tracked and removed by cleanup().
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function docker(args, { allowFail = false, input } = {}) {
  const res = spawnSync("docker", args, { encoding: "utf8", input, maxBuffer: 32 * 1024 * 1024 });
  if (res.status !== 0 && !allowFail) throw new Error(`docker ${args.slice(0, 3).join(" ")} … failed: ${res.stderr.trim()}`);
  return res;
}

/** docker, without blocking this process's event loop. */
export function dockerAsync(args) {
  return new Promise((resolve, reject) => {
    const child = spawn("docker", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`docker ${args.join(" ")} failed: ${err.trim()}`))));
  });
}

export const hostPort = (name, port) =>
  Number(
    docker(["port", name, `${port}/tcp`])
      .stdout.trim()
      .split("\n")[0]
      .split(":")
      .pop(),
  );
export const logsOf = (name) => {
  const r = docker(["logs", name], { allowFail: true });
  return r.stdout + r.stderr;
};

const memory = (q) => {
  const m = /^(\d+)(Mi|Gi)$/.exec(q ?? "");
  return m ? `${Number(m[1]) * (m[2] === "Gi" ? 1024 : 1)}m` : undefined;
};

/** A Docker network on which to run the rendered `objects`, named after `prefix`. */
export function createTopology(prefix, objects) {
  const net = `${prefix}-net`;
  const work = mkdtempSync(join(tmpdir(), `${prefix}-`));
  /** @type {{ containers: string[], volumes: string[] }} */
  const created = { containers: [], volumes: [] };
  docker(["network", "create", net]);

  const secretValue = (name, key) => {
    const s = objects.find((o) => o.kind === "Secret" && o.metadata.name === name);
    if (!s?.data?.[key]) throw new Error(`rendered Secret ${name} has no ${key}`);
    return Buffer.from(s.data[key], "base64").toString();
  };
  const configMap = (name) => objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name);

  function resolveEnv(container, podName) {
    const env = {};
    for (const from of container.envFrom ?? []) Object.assign(env, configMap(from.configMapRef.name).data);
    for (const e of container.env ?? []) {
      if ("value" in e) env[e.name] = e.value;
      else if (e.valueFrom?.secretKeyRef) env[e.name] = secretValue(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
      else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = podName;
      else throw new Error(`cannot translate env ${e.name}`);
    }
    return env;
  }

  /** `docker run` arguments for one container of a rendered pod spec. */
  function dockerRun(workload, { name, podName, aliases = [], publish = [], env: overrides = {} }) {
    const spec = workload.spec.template.spec;
    const c = spec.containers[0];
    const psc = spec.securityContext ?? {};
    const sc = c.securityContext ?? {};
    const args = ["run", "-d", "--name", name, "--hostname", podName, "--network", net];
    for (const a of aliases) args.push("--network-alias", a);
    const uid = sc.runAsUser ?? psc.runAsUser;
    const gid = sc.runAsGroup ?? psc.runAsGroup ?? uid;
    if (!uid || !(sc.runAsNonRoot ?? psc.runAsNonRoot)) throw new Error(`${name}: the chart does not set a non-root uid`);
    args.push("--user", `${uid}:${gid}`);
    if (psc.fsGroup) args.push("--group-add", String(psc.fsGroup));
    if (sc.readOnlyRootFilesystem) args.push("--read-only");
    if (sc.capabilities?.drop?.includes("ALL")) args.push("--cap-drop", "ALL");
    if (sc.allowPrivilegeEscalation === false) args.push("--security-opt", "no-new-privileges");
    const mem = memory(c.resources?.limits?.memory);
    if (mem) args.push("--memory", mem);
    for (const p of publish) args.push("-p", `127.0.0.1::${p}`);
    const env = { ...resolveEnv(c, podName), ...overrides };
    const envFile = join(work, `${name}.env`);
    writeFileSync(
      envFile,
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n") + "\n",
      { mode: 0o600 },
    );
    args.push("--env-file", envFile);
    for (const m of c.volumeMounts ?? []) {
      const vol = spec.volumes?.find((v) => v.name === m.name);
      const claim = workload.spec.volumeClaimTemplates?.find((t) => t.metadata.name === m.name);
      if (vol?.emptyDir) {
        const size = vol.emptyDir.sizeLimit ? `,size=${memory(vol.emptyDir.sizeLimit)}` : "";
        args.push("--tmpfs", `${m.mountPath}:rw,nosuid,nodev,mode=1777${size}`);
      } else if (vol?.configMap) {
        const dir = join(work, `${name}-${m.name}`);
        rmSync(dir, { recursive: true, force: true });
        execFileSync("mkdir", ["-p", dir]);
        for (const [file, text] of Object.entries(configMap(vol.configMap.name).data)) writeFileSync(join(dir, file), text);
        execFileSync("chmod", ["-R", "a+rX", work]);
        args.push("-v", `${dir}:${m.mountPath}:ro`);
      } else if (claim) {
        const volume = `${prefix}-${m.name}`;
        docker(["volume", "create", volume]);
        created.volumes.push(volume);
        // The kubelet applies the pod's fsGroup to the volume (group-owned, group-writable, setgid);
        // Docker does not, so do the same once, as root, in a throwaway container.
        if (psc.fsGroup) {
          docker([
            "run",
            "--rm",
            "--user",
            "0",
            "-v",
            `${volume}:${m.mountPath}:nocopy`,
            "--entrypoint",
            "sh",
            c.image,
            "-c",
            `chgrp ${psc.fsGroup} "$0" && chmod 2775 "$0"`,
            m.mountPath,
          ]);
        }
        args.push("-v", `${volume}:${m.mountPath}:nocopy`);
      } else throw new Error(`${name}: cannot translate volume ${m.name}`);
    }
    if (c.command?.length) args.push("--entrypoint", c.command[0]);
    args.push(c.image, ...(c.command?.slice(1) ?? []), ...(c.args ?? []));
    return { args, env };
  }

  function start(workload, opts) {
    const { args, env } = dockerRun(workload, opts);
    const res = docker(args, { allowFail: true });
    created.containers.push(opts.name);
    if (res.status !== 0) throw new Error(`cannot start ${opts.name}: ${res.stderr.trim()}`);
    return env;
  }

  let cleaned = false;
  function cleanup() {
    if (cleaned) return;
    cleaned = true;
    for (const c of created.containers) docker(["rm", "-f", "-v", c], { allowFail: true });
    docker(["network", "rm", net], { allowFail: true });
    for (const v of created.volumes) docker(["volume", "rm", "-f", v], { allowFail: true });
    rmSync(work, { recursive: true, force: true });
  }

  /**
   * `-v` arguments for a container's Secret volumes (secret, or projected Secret sources), the
   * files written from the rendered Secrets into a directory the container's user can read.
   */
  function secretMounts(spec, container) {
    const args = [];
    for (const m of container.volumeMounts ?? []) {
      const vol = spec.volumes?.find((v) => v.name === m.name);
      const sources = vol?.secret ? [{ secret: { name: vol.secret.secretName, items: vol.secret.items } }] : (vol?.projected?.sources ?? []);
      if (!sources.length || !sources.every((src) => src.secret)) continue;
      const dir = mkdtempSync(join(work, `secret-${m.name}-`));
      chmodSync(dir, 0o755);
      for (const { secret } of sources)
        for (const item of secret.items ?? []) {
          writeFileSync(join(dir, item.path), secretValue(secret.name, item.key), { mode: 0o644 });
        }
      args.push("-v", `${dir}:${m.mountPath}:ro`);
    }
    return args;
  }

  return { net, created, resolveEnv, secretMounts, start, cleanup };
}
