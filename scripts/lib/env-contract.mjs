// The chart ↔ services environment contract, for scripts/check-chart.mjs. The services read
// process.env only in services/<svc>/src/config.ts, so:
//  1. every env name the chart renders for a service's container must be a key of that file's
//     schema (grepped from the source, so a renamed or dropped variable fails here);
//  2. the rendered environment must be accepted by the service's own loadConfig (the built
//     services/<svc>/dist/config.js), with the Secrets' values filled in;
//  3. each chart value must arrive as the variable it documents, with the value it was given
//     (VALUE_TO_ENV below), so a value wired to the wrong variable fails too.
// Env names the helm test Pod gets must be read by scripts/helm-test-client.mjs.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "./helm.mjs";

/**
 * Names the chart renders ahead of the services, with who is adding them. While a pending name is
 * missing from config.ts the check prints a NOTICE instead of failing; once the service reads it,
 * it is checked like any other (then delete the entry).
 */
export const PENDING = {};

const dig = (obj, path) => path.split(".").reduce((o, k) => o?.[k], obj);
const num = (v) => Number(v);
// The services trim every value and treat "" as unset (services/shared parseEnv).
const str = (v) => (v == null || String(v).trim() === "" ? undefined : String(v).trim());
const list = (v) => (Array.isArray(v) && v.length ? v : undefined);
// TRUST_PROXY: the chat parses a hop count into { hops } and a list of proxies into { proxies }.
const trust = (v) =>
  /^\d+$/.test(String(v).trim())
    ? { hops: Number(v) }
    : {
        proxies: String(v)
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean),
      };

/** Chart value → environment variable, per service, with how the service should see it. */
export const VALUE_TO_ENV = {
  chat: [
    ["chat.port", "PORT", num],
    ["chat.probePort", "PROBE_PORT", num],
    ["logLevel", "LOG_LEVEL", str],
    ["busMode", "BUS_MODE", str],
    ["auth.mode", "AUTH_MODE", str],
    ["auth.jwt.issuer", "JWT_ISSUER", str, (v) => v.auth.mode === "jwt"],
    ["auth.jwt.audience", "JWT_AUDIENCE", str, (v) => v.auth.mode === "jwt"],
    ["auth.jwt.jwksUrl", "JWT_JWKS_URL", str, (v) => v.auth.mode === "jwt"],
    ["auth.jwt.publicKey", "JWT_PUBLIC_KEY", str, (v) => v.auth.mode === "jwt"],
    ["chat.corsOrigins", "CORS_ORIGINS", list],
    ["chat.trustProxy", "TRUST_PROXY", trust],
    ["chat.rateLimits.messagesPerSecond", "RATE_LIMIT_MESSAGES_PER_SECOND", num],
    ["chat.rateLimits.messagesBurst", "RATE_LIMIT_MESSAGES_BURST", num],
    ["chat.rateLimits.joinsPerMinute", "RATE_LIMIT_JOINS_PER_MINUTE", num],
    ["chat.rateLimits.connectionsPerIp", "RATE_LIMIT_CONNECTIONS_PER_IP", num],
    ["chat.maxRoomsPerConnection", "MAX_ROOMS_PER_CONNECTION", num],
    ["chat.maxConnectionsPerUser", "MAX_CONNECTIONS_PER_USER", num],
    ["chat.maxTextLength", "MAX_TEXT_LENGTH", num],
    ["chat.maxHttpBufferSize", "MAX_HTTP_BUFFER_SIZE", num],
    ["chat.maxClientBufferBytes", "MAX_CLIENT_BUFFER_BYTES", num],
    ["chat.fastPath", "FAST_PATH", str],
    ["chat.presenceTtlSeconds", "PRESENCE_TTL_SECONDS", num],
    ["chat.presenceAnnounceMaxMembers", "PRESENCE_ANNOUNCE_MAX_MEMBERS", num],
    ["chat.historyOnJoin", "HISTORY_ON_JOIN", num],
    ["chat.clientMsgIdTtlSeconds", "CLIENT_MSG_ID_TTL_SECONDS", num],
    ["chat.shutdownDelaySeconds", "SHUTDOWN_DELAY_SECONDS", num],
    ["chat.drainSeconds", "DRAIN_SECONDS", num],
    ["history.maxEntries", "HISTORY_MAX_ENTRIES", num],
    ["history.maxAgeSeconds", "HISTORY_MAX_AGE_SECONDS", num],
  ],
  notifier: [
    ["notifier.port", "PORT", num],
    ["notifier.probePort", "PROBE_PORT", num],
    ["logLevel", "LOG_LEVEL", str],
    ["busMode", "BUS_MODE", str],
    ["notifier.stream", "NOTIFIER_STREAM", str],
    ["notifier.group", "NOTIFIER_GROUP", str],
    ["notifier.rateLimitPerSecond", "RATE_LIMIT_NOTIFIER_PER_SECOND", num],
    ["notifier.maxDataBytes", "NOTIFIER_MAX_DATA_BYTES", num],
    ["notifier.dedupeWindowSeconds", "NOTIFIER_DEDUPE_WINDOW_SECONDS", num],
    ["notifier.claimIdleMs", "NOTIFIER_CLAIM_IDLE_MS", num],
    ["notifier.batchSize", "NOTIFIER_BATCH_SIZE", num],
    ["notifier.pollMs", "NOTIFIER_POLL_MS", num],
    ["notifier.shutdownDelaySeconds", "SHUTDOWN_DELAY_SECONDS", num],
    ["history.maxEntries", "HISTORY_MAX_ENTRIES", num],
    ["history.maxAgeSeconds", "HISTORY_MAX_AGE_SECONDS", num],
  ],
};

/** The variable names a service's config.ts declares: the keys of its zod schema. */
export function configNames(svc) {
  const src = readFileSync(join(repoRoot, `services/${svc}/src/config.ts`), "utf8");
  const names = [...src.matchAll(/^\s+([A-Z][A-Z0-9_]*)\s*:/gm)].map((m) => m[1]);
  // The Redis connection variables both services read are defined once, in shared redis-config.ts.
  if (src.includes("...redisTopologyEnv")) {
    const shared = readFileSync(join(repoRoot, "services/shared/src/redis-config.ts"), "utf8");
    const block = shared.slice(shared.indexOf("export const redisTopologyEnv = {"));
    names.push(...[...block.slice(0, block.indexOf("\n};")).matchAll(/^\s{2}([A-Z][A-Z0-9_]*)\s*:/gm)].map((m) => m[1]));
  }
  return new Set(names);
}

const loaders = {};
async function loadConfigOf(svc) {
  if (!(svc in loaders)) {
    const file = join(repoRoot, `services/${svc}/dist/config.js`);
    loaders[svc] = existsSync(file) ? (await import(pathToFileURL(file).href)).loadConfig : undefined;
  }
  return loaders[svc];
}

let caFile;
/** A container's environment as the kubelet would build it; Secrets decoded from the render or stand-ins. */
let tlsPair;
function standInTls() {
  if (!tlsPair) {
    const dir = mkdtempSync(join(tmpdir(), "chart-tls-"));
    // loadConfig checks that the files are readable; the PEM itself is read when the server starts.
    for (const f of ["tls.crt", "tls.key"]) writeFileSync(join(dir, f), "-----BEGIN STAND-IN-----\n-----END STAND-IN-----\n");
    tlsPair = { TLS_CERT_FILE: join(dir, "tls.crt"), TLS_KEY_FILE: join(dir, "tls.key") };
  }
  return tlsPair;
}

export function resolvedEnv(objects, container) {
  const env = {};
  for (const from of container.envFrom ?? []) {
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef?.name);
    Object.assign(env, cm?.data ?? {});
  }
  for (const e of container.env ?? []) {
    if ("value" in e) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = "chat-5d9c7b-x2k4p";
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const secret = objects.find((o) => o.kind === "Secret" && o.metadata.name === ref.name);
      const standIn = { JWT_SECRET: "s".repeat(48), NOTIFIER_API_KEYS: "k".repeat(40) }[e.name] ?? "stand-in-secret";
      env[e.name] = secret?.data?.[ref.key] ? Buffer.from(secret.data[ref.key], "base64").toString() : standIn;
    }
  }
  // TLS in the pod: the service reads the pair at start; stand in with a throwaway one.
  for (const name of ["TLS_CERT_FILE", "TLS_KEY_FILE"]) if (env[name]) env[name] = standInTls()[name];
  if (env.REDIS_TLS_CA_FILE) {
    // The service reads the file at start; stand in for the mounted bundle.
    // The service parses the bundle at start, so the stand-in is a real (throwaway) certificate.
    if (!caFile) {
      const dir = mkdtempSync(join(tmpdir(), "chart-ca-"));
      caFile = join(dir, "ca.crt");
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=stand-in-ca",
          "-keyout",
          join(dir, "ca.key"),
          "-out",
          caFile,
        ],
        { stdio: "ignore" },
      );
    }
    env.REDIS_TLS_CA_FILE = caFile;
  }
  return env;
}

/**
 * Checks one rendered value set. `values` are the merged values; `notices` collects lines for
 * pending names. Returns the number of variables checked.
 */
export async function checkEnvContract(where, objects, values, problem, notices) {
  let checked = 0;
  const components = { chat: "chat", notifier: "notifier" };
  for (const [svc, component] of Object.entries(components)) {
    const deploy = objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === component);
    if (!deploy) continue;
    const container = deploy.spec.template.spec.containers.find((c) => c.name === svc) ?? deploy.spec.template.spec.containers[0];
    const env = resolvedEnv(objects, container);
    const userNames = new Set((dig(values, `${svc}.extraEnv`) ?? []).map((e) => e.name));
    const known = configNames(svc);
    for (const name of Object.keys(env)) {
      if (userNames.has(name) || known.has(name)) continue;
      if (PENDING[name]) notices.add(`${name} is rendered for ${svc} but services/${svc}/src/config.ts does not read it yet: ${PENDING[name]}`);
      else problem(`${where} ${svc}`, `env ${name} is not read by services/${svc}/src/config.ts (an env var the service ignores is a bug)`);
    }
    const loadConfig = await loadConfigOf(svc);
    if (!loadConfig) {
      problem(`${where} ${svc}`, `services/${svc}/dist/config.js is missing: run npm run build first`);
      continue;
    }
    let config;
    try {
      config = loadConfig(env);
    } catch (err) {
      problem(`${where} ${svc}`, `the service refuses the rendered environment: ${err.message}`);
      continue;
    }
    for (const [path, name, as, applies] of VALUE_TO_ENV[svc]) {
      if (applies && !applies(values)) continue;
      if (!known.has(name)) continue; // pending: reported above
      const want = as(dig(values, path));
      const got = config[name];
      if (JSON.stringify(got) !== JSON.stringify(want))
        problem(`${where} ${svc}`, `${path} = ${JSON.stringify(want)} reaches the service as ${name} = ${JSON.stringify(got)}`);
      checked++;
    }
    if (env.REDIS_PASSWORD && config.REDIS_PASSWORD !== env.REDIS_PASSWORD) problem(`${where} ${svc}`, "REDIS_PASSWORD does not reach the service");
  }
  const test = objects.find((o) => o.kind === "Pod" && o.metadata.annotations?.["helm.sh/hook"] === "test");
  if (test) {
    const script = readFileSync(join(repoRoot, "scripts/helm-test-client.mjs"), "utf8");
    for (const e of test.spec.containers[0].env ?? [])
      if (!script.includes(`env.${e.name}`)) problem(`${where} helm test`, `env ${e.name} is not read by scripts/helm-test-client.mjs`);
  }
  return checked;
}
