// Per-object rules of the chart check (scripts/check-chart.mjs): Kubernetes schemas
// (kubernetes-models), the restricted Pod Security Standard with resources, and common labels.
// Each function reports through problem(where, message).

// ---------- schema validation with kubernetes-models ----------
// CRDs with published models: the Gateway API, cert-manager and the Prometheus Operator.
const CRD_PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};
const modelCache = new Map();
async function modelFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!modelCache.has(key)) {
    const pkg = CRD_PACKAGES[apiVersion.split("/")[0]];
    const path = pkg ? `${pkg}/${apiVersion}/${kind}` : `kubernetes-models/${apiVersion}/${kind}`;
    modelCache.set(key, await import(path).then((m) => m[kind]).catch(() => undefined));
  }
  return modelCache.get(key);
}

// GKE's CRDs have no published models: a structural check of what the chart sets.
const targetsService = (o) => (o.spec?.targetRef?.kind === "Service" && o.spec.targetRef.name ? null : "needs spec.targetRef to a Service");
const CRDS = {
  "cloud.google.com/v1/BackendConfig": (o) => (Number.isInteger(o.spec?.timeoutSec) ? null : "needs an integer spec.timeoutSec"),
  "networking.gke.io/v1/GCPBackendPolicy": (o) => targetsService(o) ?? (Number.isInteger(o.spec?.default?.timeoutSec) ? null : "needs spec.default.timeoutSec"),
  "networking.gke.io/v1/HealthCheckPolicy": (o) => targetsService(o) ?? (o.spec?.default?.config?.type ? null : "needs spec.default.config.type"),
};

export async function validateObject(where, obj, problem) {
  const id = `${where} ${obj.kind}/${obj.metadata?.name}`;
  if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) return problem(id, "apiVersion, kind and metadata.name are required");
  const crd = CRDS[`${obj.apiVersion}/${obj.kind}`];
  if (crd) {
    const err = crd(obj);
    if (err) problem(id, err);
    return;
  }
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) return problem(id, `no Kubernetes schema for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (err) {
    problem(id, `schema: ${err.message}`);
  }
}

// ---------- restricted PSS + resources ----------
export function podSpecOf(obj) {
  if (obj.kind === "Pod") return obj.spec;
  if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)) return obj.spec?.template?.spec;
  if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template?.spec;
  return undefined;
}

export function checkWorkload(where, obj, problem) {
  const id = `${where} ${obj.kind}/${obj.metadata.name}`;
  const spec = podSpecOf(obj);
  if (!spec) return;
  const psc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problem(id, "uses a host namespace");
  for (const v of spec.volumes ?? []) if (v.hostPath) problem(id, `volume ${v.name} is a hostPath`);
  if (psc.seccompProfile?.type !== "RuntimeDefault") problem(id, "pod seccompProfile must be RuntimeDefault");
  if (spec.automountServiceAccountToken !== false) problem(id, "automountServiceAccountToken must be false");
  const labels = obj.kind === "Pod" ? obj.metadata.labels : obj.spec?.template?.metadata?.labels;
  if (!labels?.["app.kubernetes.io/component"]) problem(id, "pod labels lack app.kubernetes.io/component");
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const cid = `${id} container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) problem(cid, "runAsNonRoot must be true");
    if ((sc.runAsUser ?? psc.runAsUser) === 0) problem(cid, "runs as uid 0");
    if (sc.readOnlyRootFilesystem !== true) problem(cid, "readOnlyRootFilesystem must be true");
    if (sc.allowPrivilegeEscalation !== false) problem(cid, "allowPrivilegeEscalation must be false");
    if (sc.privileged) problem(cid, "privileged");
    if (!sc.capabilities?.drop?.includes("ALL")) problem(cid, "capabilities.drop must include ALL");
    if ((sc.capabilities?.add ?? []).some((cap) => cap !== "NET_BIND_SERVICE")) problem(cid, "adds capabilities");
    const sec = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (sec !== "RuntimeDefault" && sec !== "Localhost") problem(cid, "seccompProfile must be RuntimeDefault");
    const r = c.resources ?? {};
    if (!r.requests?.cpu || !r.requests?.memory) problem(cid, "resources.requests.cpu and .memory must be set");
    if (!r.limits?.memory) problem(cid, "resources.limits.memory must be set");
    if (!c.image || /:latest$/.test(c.image) || !/[:@]/.test(c.image)) problem(cid, `image ${c.image} needs a pinned tag`);
  }
}

export function checkLabels(where, obj, problem) {
  const l = obj.metadata.labels ?? {};
  for (const k of ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"])
    if (!l[k]) problem(`${where} ${obj.kind}/${obj.metadata.name}`, `label ${k} is missing`);
}
