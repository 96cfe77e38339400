// The runtime contract of a rendered chart (scripts/check-chart.mjs): what the services need of the
// objects the chart renders, beyond their schemas and the Pod Security Standard (chart-rules.mjs).
// Each check reports through `problem(where, message)`.

const seconds = (v) => Number(v ?? 0);

/** The environment a container gets: its envFrom ConfigMaps, then its own env (`{ from }` for a valueFrom). */
export function envOf(objects, container) {
  const env = {};
  for (const from of container.envFrom ?? []) {
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef?.name);
    Object.assign(env, cm?.data ?? {});
  }
  for (const e of container.env ?? []) env[e.name] = e.value ?? (e.valueFrom ? { from: e.valueFrom } : "");
  return env;
}

/** A Kubernetes memory quantity in bytes (NaN when it is not one). */
function quantity(q) {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(String(q ?? ""));
  const units = { "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return m ? Number(m[1]) * units[m[2] ?? ""] : NaN;
}

/** A CA bundle is mounted where REDIS_TLS_CA_FILE points, for chat and notifier alike. */
// A CA bundle is mounted where REDIS_TLS_CA_FILE points, for chat and notifier alike.
function checkCa(problem, deploy, e, id) {
  if (!e.REDIS_TLS_CA_FILE) return;
  const c = deploy.spec.template.spec.containers[0];
  const m = c.volumeMounts?.find((v) => e.REDIS_TLS_CA_FILE.startsWith(`${v.mountPath}/`));
  const vol = deploy.spec.template.spec.volumes?.find((v) => v.name === m?.name);
  const file = e.REDIS_TLS_CA_FILE.slice((m?.mountPath.length ?? 0) + 1);
  const items = vol?.configMap?.items ?? vol?.secret?.items ?? [];
  if (!m?.readOnly || !items.some((i) => i.path === file)) problem(id, `REDIS_TLS_CA_FILE ${e.REDIS_TLS_CA_FILE} is not a mounted read-only file`);
  if (!/^rediss:\/\//.test(e.REDIS_URL ?? "") && e.REDIS_TLS !== "1") problem(id, "REDIS_TLS_CA_FILE without a rediss:// REDIS_URL or REDIS_TLS");
}

/** Probes on the probe port, never the public port. */
/** A container port by number or name. */
const portNamed = (c, p) => (typeof p === "number" ? p : c.ports?.find((x) => x.name === p)?.containerPort);
function checkProbes(problem, c, id, portEnv) {
  for (const kind of ["readinessProbe", "livenessProbe"]) {
    const probe = c[kind];
    if (!probe?.httpGet) {
      problem(id, `${kind} (httpGet) is missing`);
      continue;
    }
    if (portNamed(c, probe.httpGet.port) !== portEnv) problem(id, `${kind} is not on the probe port ${portEnv}`);
  }
  if (c.readinessProbe?.httpGet?.path !== "/readyz") problem(id, "readinessProbe must GET /readyz");
  if (c.livenessProbe?.httpGet?.path !== "/livez") problem(id, "livenessProbe must GET /livez");
}

/** Checks the objects rendered for one set of values (`where` names it). */
export function checkContract(where, objects, values, problem) {
  const find = (kind, component) => objects.filter((o) => o.kind === kind && o.metadata.labels?.["app.kubernetes.io/component"] === component);
  const c = { where, objects, values, problem, find };
  const chat = checkChat(c);
  if (!chat) return;
  checkChatServices(c, chat);
  const notifier = checkNotifier(c, chat.env);
  if (notifier?.stop) return;
  if (checkRedis(c, chat.deploy, notifier?.deploy, chat.env)) return;
  checkNetworkPolicies(c);
  checkExtras(c);
}

/** The chat Deployment: its env, probes and drain window. */
function checkChat(c) {
  const { where, objects, problem, find } = c;
  const [chat] = find("Deployment", "chat");
  if (!chat) return void problem(where, "no chat Deployment");
  const chatC = chat.spec.template.spec.containers.find((c) => c.name === "chat");
  const env = envOf(objects, chatC);
  const need = [
    "PORT",
    "PROBE_PORT",
    "LOG_LEVEL",
    "POD_NAME",
    "AUTH_MODE",
    "TRUST_PROXY",
    "BUS_MODE",
    "SHUTDOWN_DELAY_SECONDS",
    "DRAIN_SECONDS",
    "RATE_LIMIT_MESSAGES_PER_SECOND",
    "RATE_LIMIT_CONNECTIONS_PER_IP",
    "MAX_ROOMS_PER_CONNECTION",
    "MAX_CONNECTIONS_PER_USER",
    "HISTORY_MAX_ENTRIES",
  ];
  for (const name of need) if (!(name in env)) problem(`${where} chat`, `env ${name} is missing`);
  // Redis one way: a URL, sentinels with their master's name, or cluster nodes (the services refuse two).
  const ways = ["REDIS_URL", "REDIS_SENTINELS", "REDIS_CLUSTER_NODES"].filter((name) => name in env);
  if (ways.length !== 1) problem(`${where} chat`, `needs exactly one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES; got ${ways.join(", ") || "none"}`);
  if ("REDIS_SENTINELS" in env && !env.REDIS_SENTINEL_MASTER) problem(`${where} chat`, "REDIS_SENTINELS without REDIS_SENTINEL_MASTER");
  if (env.POD_NAME?.from?.fieldRef?.fieldPath !== "metadata.name") problem(`${where} chat`, "POD_NAME must come from metadata.name");
  if (/\/\/[^/]*@/.test(env.REDIS_URL ?? "")) problem(`${where} chat`, "REDIS_URL must not carry credentials");
  if (/\*/.test(env.CORS_ORIGINS ?? "")) problem(`${where} chat`, "CORS_ORIGINS must never be *");
  if (env.AUTH_MODE === "jwt") {
    const sources = [env.JWT_SECRET?.from?.secretKeyRef, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter(Boolean).length;
    if (sources !== 1) problem(`${where} chat`, `AUTH_MODE=jwt needs exactly one of JWT_SECRET (from a Secret), JWT_PUBLIC_KEY, JWT_JWKS_URL; got ${sources}`);
  }
  if (env.JWT_SECRET && !env.JWT_SECRET.from?.secretKeyRef) problem(`${where} chat`, "JWT_SECRET must come from a Secret");
  checkCa(problem, chat, env, `${where} chat`);
  if (env.REDIS_PASSWORD && !env.REDIS_PASSWORD.from?.secretKeyRef) problem(`${where} chat`, "REDIS_PASSWORD must come from a Secret");
  // Probes on the probe port, never the public port.
  const probePort = Number(env.PROBE_PORT);
  checkProbes(problem, chatC, `${where} chat`, probePort);
  // Drain: grace > preStop + readiness wait + drain window.
  const preStop = Number(chatC.lifecycle?.preStop?.exec?.command?.[1] ?? chatC.lifecycle?.preStop?.sleep?.seconds ?? 0);
  const window = preStop + seconds(env.SHUTDOWN_DELAY_SECONDS) + seconds(env.DRAIN_SECONDS);
  if (!(chat.spec.template.spec.terminationGracePeriodSeconds > window))
    problem(`${where} chat`, `terminationGracePeriodSeconds ${chat.spec.template.spec.terminationGracePeriodSeconds} is not > ${window}`);
  if (!chat.spec.template.metadata.annotations?.["checksum/config"]) problem(`${where} chat`, "no checksum/config annotation");
  return { deploy: chat, container: chatC, env, probePort };
}

/** The chat's Services, PDB, HPA and scrape annotations. */
function checkChatServices(c, chatParts) {
  const { where, objects, values, problem, find } = c;
  const { deploy: chat, probePort } = chatParts;
  // Services: the public one has no probe port.
  const publicSvc = objects.find((o) => o.kind === "Service" && o.metadata.name === chat.metadata.name);
  if (!publicSvc) problem(where, "no public chat Service");
  else {
    if (publicSvc.spec.type !== (values.chat?.service?.type ?? "LoadBalancer")) problem(where, `chat Service type is ${publicSvc.spec.type}`);
    // Issue 24 #1: under `Cluster` every client shares the node addresses, so per-address limits lock everyone out.
    const policy = values.chat?.service?.externalTrafficPolicy ?? "Local";
    if (publicSvc.spec.type === "LoadBalancer" && publicSvc.spec.externalTrafficPolicy !== policy)
      problem(where, `chat Service externalTrafficPolicy is ${publicSvc.spec.externalTrafficPolicy}, not ${policy}`);
    for (const p of publicSvc.spec.ports) {
      if (p.targetPort === "probes" || p.targetPort === probePort || p.port === probePort) problem(where, "the public Service exposes the probe port");
    }
  }
  // PDBs.
  if (!find("PodDisruptionBudget", "chat").length) problem(where, "no chat PodDisruptionBudget");
  // HPA xor replicas.
  const hpa = find("HorizontalPodAutoscaler", "chat")[0];
  if (hpa && chat.spec.replicas !== undefined) problem(where, "chat Deployment sets replicas while an HPA scales it");
  if (values.chat?.autoscaling?.targetConnectionsPerPod && !hpa?.spec.metrics.some((m) => m.type === "Pods" && m.pods.metric.name === "chat_connected_clients"))
    problem(where, "targetConnectionsPerPod set but no chat_connected_clients Pods metric");
  if (
    values.chat?.autoscaling?.targetCPUUtilizationPercentage &&
    values.chat?.autoscaling?.enabled &&
    !hpa?.spec.metrics.some((m) => m.type === "Resource" && m.resource.name === "cpu")
  )
    problem(where, "targetCPUUtilizationPercentage set but no cpu Resource metric");
  // prometheus.io/* annotations for plain Prometheus, on the probe port.
  for (const d of [chat, ...find("Deployment", "notifier")]) {
    const ann = d.spec.template.metadata.annotations ?? {};
    const probes = d.spec.template.spec.containers[0].ports.find((p) => p.name === "probes")?.containerPort;
    if (
      values.metrics?.podAnnotations !== false &&
      (ann["prometheus.io/scrape"] !== "true" || ann["prometheus.io/port"] !== String(probes) || ann["prometheus.io/path"] !== "/metrics")
    )
      problem(`${where} ${d.metadata.name}`, "prometheus.io/scrape|port|path annotations missing or not on the probe port");
  }
}

/** The notifier Deployment, which must agree with the chat on the bus and Redis. */
function checkNotifier(c, env) {
  const { where, objects, values, problem, find } = c;
  // Notifier.
  const [notifier] = find("Deployment", "notifier");
  if (values.notifier?.enabled !== false) {
    if (!notifier) return { stop: problem(where, "no notifier Deployment") };
    if (!(notifier.spec.replicas >= 1)) problem(where, "notifier needs at least 1 replica");
    const nc = notifier.spec.template.spec.containers[0];
    const nenv = envOf(objects, nc);
    for (const name of [
      "PORT",
      "PROBE_PORT",
      "LOG_LEVEL",
      "POD_NAME",
      "NOTIFIER_API_KEYS",
      "NOTIFIER_STREAM",
      "BUS_MODE",
      "RATE_LIMIT_NOTIFIER_PER_SECOND",
      "HISTORY_MAX_ENTRIES",
      "HISTORY_MAX_AGE_SECONDS",
      "SHUTDOWN_DELAY_SECONDS",
    ])
      if (!(name in nenv)) problem(`${where} notifier`, `env ${name} is missing`);
    if (!nenv.NOTIFIER_API_KEYS?.from?.secretKeyRef) problem(`${where} notifier`, "NOTIFIER_API_KEYS must come from a Secret");
    if (nenv.BUS_MODE !== env.BUS_MODE) problem(where, `BUS_MODE differs: chat ${env.BUS_MODE}, notifier ${nenv.BUS_MODE}`);
    for (const name of [
      "REDIS_URL",
      "REDIS_SENTINELS",
      "REDIS_SENTINEL_MASTER",
      "REDIS_TLS",
      "REDIS_WAIT_REPLICAS",
      "REDIS_TLS_CA_FILE",
      "HISTORY_MAX_ENTRIES",
      "HISTORY_MAX_AGE_SECONDS",
    ])
      if (nenv[name] !== env[name]) problem(where, `chat and notifier get different ${name}s`);
    if (env.REDIS_PASSWORD && !nenv.REDIS_PASSWORD?.from?.secretKeyRef) problem(`${where} notifier`, "REDIS_PASSWORD must come from a Secret");
    if (env.REDIS_SENTINEL_PASSWORD && !nenv.REDIS_SENTINEL_PASSWORD?.from?.secretKeyRef)
      problem(`${where} notifier`, "REDIS_SENTINEL_PASSWORD must come from a Secret");
    checkCa(problem, notifier, nenv, `${where} notifier`);
    const nPreStop = Number(nc.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    if (!(notifier.spec.template.spec.terminationGracePeriodSeconds > nPreStop + seconds(nenv.SHUTDOWN_DELAY_SECONDS)))
      problem(`${where} notifier`, "terminationGracePeriodSeconds is not > preStop + SHUTDOWN_DELAY_SECONDS");
    checkProbes(problem, nc, `${where} notifier`, Number(nenv.PROBE_PORT));
    if (!notifier.spec.template.metadata.annotations?.["checksum/config"]) problem(`${where} notifier`, "no checksum/config annotation");
    for (const svc of find("Service", "notifier"))
      if (svc.spec.type !== "ClusterIP") problem(where, `notifier Service ${svc.metadata.name} is ${svc.spec.type}`);
    if (!find("PodDisruptionBudget", "notifier").length) problem(where, "no notifier PodDisruptionBudget");
  }
  return { deploy: notifier };
}

/** The in-cluster Redis: durable, password- and ACL-protected, bounded in memory. True when there is nothing more to check. */
function checkRedis(c, chat, notifier, env) {
  const { where, objects, values, problem, find } = c;
  // Redis.
  const [redis] = find("StatefulSet", "redis");
  if (values.redis?.enabled !== false) {
    if (!redis) return problem(where, "no Redis StatefulSet");
    if (redis.spec.replicas !== 1) problem(where, "Redis must have exactly 1 replica");
    if (!redis.spec.volumeClaimTemplates?.length) problem(where, "Redis has no PVC");
    const conf = find("ConfigMap", "redis")[0]?.data?.["redis.conf"] ?? "";
    if (!/^appendonly yes$/m.test(conf)) problem(where, "Redis AOF is not on");
    const rc = redis.spec.template.spec.containers[0];
    if (!`${(rc.command ?? []).join(" ")} ${(rc.args ?? []).join(" ")}`.includes("--requirepass")) problem(where, "Redis has no requirepass");
    if (!rc.env?.find((e) => e.name === "REDIS_PASSWORD")?.valueFrom?.secretKeyRef) problem(where, "Redis password is not from a Secret");
    if (find("Service", "redis").some((s) => s.spec.type !== "ClusterIP")) problem(where, "Redis Service must be ClusterIP");
    // maxmemory below the container limit, noeviction: Redis refuses writes instead of being OOMKilled.
    const maxmemory = Number(/^maxmemory (\d+)$/m.exec(conf)?.[1]);
    const limit = quantity(rc.resources?.limits?.memory);
    if (!(maxmemory > 0 && maxmemory < limit)) problem(where, `Redis maxmemory ${maxmemory} must be set below the memory limit ${limit}`);
    if (!/^maxmemory-policy noeviction$/m.test(conf)) problem(where, "Redis maxmemory-policy must be noeviction");
    if (!rc.startupProbe) problem(where, "Redis has no startupProbe");
    const rpod = redis.spec.template.spec;
    if (rpod.serviceAccountName === chat.spec.template.spec.serviceAccountName) problem(where, "Redis shares the services' ServiceAccount");
    if (!objects.some((o) => o.kind === "ServiceAccount" && o.metadata.name === rpod.serviceAccountName) && values.redis?.serviceAccount?.create !== false)
      problem(where, `Redis's ServiceAccount ${rpod.serviceAccountName} is not rendered`);
    for (const [id, t] of [
      ["redis", redis.spec.template],
      ["chat", chat.spec.template],
      ["notifier", notifier?.spec.template],
    ]) {
      if (!t) continue;
      for (const label of ["helm.sh/chart", "app.kubernetes.io/version"]) if (t.metadata.labels?.[label]) problem(where, `${id} pod template carries ${label}`);
      if (!t.metadata.annotations?.["checksum/secrets"]) problem(where, `${id} pod template has no checksum/secrets`);
    }
    checkRedisAcl(c, rc, env);
  } else if (redis) problem(where, "redis.enabled=false still renders a Redis StatefulSet");
  return false;
}

/** ACL users: the services connect as one that cannot run admin commands; producers XADD only. */
function checkRedisAcl(c, rc, env) {
  const { where, values, problem } = c;
  // ACL users: the services connect as one that cannot run admin commands; producers XADD only.
  if (values.redis?.acl?.enabled !== false) {
    const a = values.redis.acl;
    const cmd = (rc.args ?? []).join(" ");
    const quoted = a.serviceRules
      .split(" ")
      .filter(Boolean)
      .map((r) => `'${r}'`)
      .join(" ");
    if (!cmd.includes(`--user ${a.serviceUser} on ">$REDIS_SERVICE_PASSWORD" ${quoted}`))
      problem(where, "Redis args lack the services' ACL user with redis.acl.serviceRules");
    if (!cmd.includes(`--user ${a.producerUser} on ">$REDIS_PRODUCER_PASSWORD" resetchannels -@all +xadd '~${values.notifier.stream}'`))
      problem(where, "Redis args lack the producers' XADD-only ACL user");
    if (!/-@dangerous/.test(a.serviceRules) || !/-@admin/.test(a.serviceRules)) problem(where, "redis.acl.serviceRules must refuse @dangerous and @admin");
    if (env.REDIS_USERNAME !== a.serviceUser) problem(`${where} chat`, `REDIS_USERNAME is ${env.REDIS_USERNAME}, not ${a.serviceUser}`);
    if (env.REDIS_PASSWORD?.from?.secretKeyRef?.key === rc.env.find((e) => e.name === "REDIS_PASSWORD")?.valueFrom.secretKeyRef.key)
      problem(`${where} chat`, "the services get the default user's password, not their ACL user's");
  }
}

/** NetworkPolicies around Redis, the notifier and the chat's probe port. */
function checkNetworkPolicies(c) {
  const { where, objects, values, problem } = c;
  // NetworkPolicies.
  if (values.networkPolicy?.enabled !== false) {
    const nps = objects.filter((o) => o.kind === "NetworkPolicy");
    if (values.redis?.enabled !== false) {
      const np = nps.find((o) => o.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === "redis");
      const comps = np?.spec.ingress[0].from.map((f) => f.podSelector?.matchLabels?.["app.kubernetes.io/component"]).sort();
      if (np && np.spec.ingress.length !== 1 + (values.networkPolicy?.redis?.extraFrom?.length ? 1 : 0))
        problem(where, "Redis NetworkPolicy has rules beyond chat, notifier and networkPolicy.redis.extraFrom");
      if (JSON.stringify(comps) !== JSON.stringify(["chat", "notifier"]))
        problem(where, `Redis NetworkPolicy must admit chat and notifier only, admits ${comps}`);
    }
    if (values.notifier?.enabled !== false && !nps.some((o) => o.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === "notifier"))
      problem(where, "no notifier NetworkPolicy");
    // The chat pods: the public port from anywhere, the probe port only from metricsFrom.
    if (values.networkPolicy?.chat?.enabled !== false) {
      const np = nps.find((o) => o.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === "chat");
      if (!np) problem(where, "no chat NetworkPolicy: the probe port (/metrics, /debug) is open cluster-wide");
      else
        for (const rule of np.spec.ingress) {
          if (rule.ports?.some((p) => p.port === "probes") && !rule.from?.length)
            problem(where, "the chat NetworkPolicy admits the probe port from everywhere");
          if (!rule.ports?.length) problem(where, "a chat NetworkPolicy rule admits every port");
        }
    }
  }
}

/** The dashboard ConfigMap, Secrets kept out of ConfigMaps, and the helm test hook. */
function checkExtras(c) {
  const { where, objects, values, problem } = c;
  // The Grafana dashboard ConfigMap carries valid JSON.
  for (const cm of objects.filter((o) => o.kind === "ConfigMap" && o.data?.["chat.json"])) {
    try {
      JSON.parse(cm.data["chat.json"]);
    } catch (err) {
      problem(where, `dashboard ConfigMap ${cm.metadata.name}: ${err.message}`);
    }
  }
  if (values.grafanaDashboard?.enabled && !objects.some((o) => o.kind === "ConfigMap" && o.data?.["chat.json"]))
    problem(where, "grafanaDashboard.enabled but no dashboard ConfigMap");
  // Secrets: never a password in a ConfigMap.
  for (const cm of objects.filter((o) => o.kind === "ConfigMap"))
    for (const k of Object.keys(cm.data ?? {})) if (/PASSWORD|SECRET|API_KEYS/.test(k)) problem(where, `ConfigMap ${cm.metadata.name} holds ${k}`);
  // helm test hook.
  if (values.tests?.enabled !== false) {
    const t = objects.find((o) => o.kind === "Pod" && o.metadata.annotations?.["helm.sh/hook"] === "test");
    if (!t) problem(where, "no helm test Pod");
    else {
      if (!t.spec.containers[0].command?.join(" ").includes("scripts/helm-test-client.mjs"))
        problem(where, "helm test Pod does not run scripts/helm-test-client.mjs");
      if (!/hook-succeeded/.test(t.metadata.annotations["helm.sh/hook-delete-policy"] ?? ""))
        problem(where, "the helm test Pod is left behind after it passed (hook-delete-policy)");
      if (t.spec.containers[0].env?.some((e) => e.valueFrom?.secretKeyRef))
        problem(where, "the helm test Pod takes a secret as an env var: mount it as a file");
    }
  }
}
