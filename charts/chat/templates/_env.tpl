{{/*
The services' environment. Every name rendered here is read by services/chat/src/config.ts or
services/notifier/src/config.ts (the only readers of process.env): scripts/check-chart.mjs fails
on a name the service does not read, and parses the rendered environment with the services' own
config code. Secrets (REDIS_PASSWORD, JWT_SECRET, NOTIFIER_API_KEYS) and POD_NAME are set in the
Deployments, never here.
*/}}

{{/* Refuses value combinations the services would refuse at start. */}}
{{- define "chat.validate" -}}
{{- $jwt := .Values.auth.jwt -}}
{{- if eq .Values.auth.mode "jwt" -}}
{{- if and $jwt.publicKey $jwt.jwksUrl -}}
{{- fail "auth.jwt: set one of publicKey and jwksUrl, not both (the service takes exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL)" -}}
{{- end -}}
{{- if and (or $jwt.publicKey $jwt.jwksUrl) (or $jwt.secret $jwt.existingSecret) -}}
{{- fail "auth.jwt: secret/existingSecret cannot be combined with publicKey or jwksUrl (the service takes exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL)" -}}
{{- end -}}
{{- end -}}
{{- $ca := .Values.externalRedis.tlsCa -}}
{{- $sources := 0 -}}
{{- range (list $ca.pem $ca.existingConfigMap $ca.existingSecret) }}{{ if . }}{{ $sources = add1 $sources }}{{ end }}{{ end -}}
{{- if gt (int $sources) 1 -}}
{{- fail "externalRedis.tlsCa: set one of pem, existingConfigMap and existingSecret" -}}
{{- end -}}
{{- if and (gt (int $sources) 0) .Values.redis.enabled -}}
{{- fail "externalRedis.tlsCa needs redis.enabled=false (the in-cluster Redis has no TLS)" -}}
{{- end -}}
{{- $x := .Values.externalRedis -}}
{{- if and (gt (int $sources) 0) (eq $x.mode "standalone") (not (hasPrefix "rediss://" ($x.url | default ""))) -}}
{{- fail "externalRedis.tlsCa needs a rediss:// externalRedis.url" -}}
{{- end -}}
{{- if and (gt (int $sources) 0) (ne $x.mode "standalone") (not $x.tls) -}}
{{- fail (printf "externalRedis.tlsCa needs externalRedis.tls=true in mode %s" $x.mode) -}}
{{- end -}}
{{- if not .Values.redis.enabled -}}
{{- if and (eq $x.mode "cluster") (not $x.cluster.nodes) -}}
{{- fail "externalRedis.mode=cluster needs externalRedis.cluster.nodes (host:port of a configuration or discovery endpoint, or of some nodes)" -}}
{{- end -}}
{{- if and (eq $x.mode "cluster") $x.waitReplicas -}}
{{- fail "externalRedis.waitReplicas is not available in mode cluster (Redis WAIT follows one master); set it to 0" -}}
{{- end -}}
{{- if and (eq $x.mode "sentinel") (or (not $x.sentinel.hosts) (not $x.sentinel.masterName)) -}}
{{- fail "externalRedis.mode=sentinel needs externalRedis.sentinel.hosts (host:port of each sentinel) and externalRedis.sentinel.masterName" -}}
{{- end -}}
{{- if and (ne $x.mode "standalone") $x.url -}}
{{- fail (printf "externalRedis.url is for mode standalone; mode %s names its endpoints under externalRedis.%s" $x.mode $x.mode) -}}
{{- end -}}
{{- if and $x.tls (eq $x.mode "standalone") -}}
{{- fail "externalRedis.tls is for modes sentinel and cluster; in mode standalone write rediss:// in externalRedis.url" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* Non-empty when a Redis CA bundle is mounted; REDIS_TLS_CA_FILE names it. */}}
{{- define "chat.redis.tlsCa" -}}
{{- $ca := .Values.externalRedis.tlsCa -}}
{{- if and (not .Values.redis.enabled) (or $ca.pem $ca.existingConfigMap $ca.existingSecret) }}true{{ end -}}
{{- end }}
{{- define "chat.redis.tlsCaDir" }}/etc/chat/redis-tls{{ end }}

{{/* The volume with the CA bundle, always at <dir>/ca.crt whatever its key. */}}
{{- define "chat.redis.tlsCaVolume" -}}
{{- $ca := .Values.externalRedis.tlsCa -}}
- name: redis-tls-ca
{{- if $ca.existingSecret }}
  secret:
    secretName: {{ $ca.existingSecret }}
    items: [{ key: {{ $ca.key | quote }}, path: ca.crt }]
{{- else }}
  configMap:
    name: {{ $ca.existingConfigMap | default (printf "%s-redis-tls-ca" (include "chat.fullname" .)) }}
    items: [{ key: {{ if $ca.existingConfigMap }}{{ $ca.key | quote }}{{ else }}ca.crt{{ end }}, path: ca.crt }]
{{- end }}
{{- end }}

{{/* Redis settings both services get. */}}
{{- define "chat.env.redis" -}}
{{- $x := .Values.externalRedis -}}
{{- if or .Values.redis.enabled (eq $x.mode "standalone") -}}
REDIS_URL: {{ include "chat.redis.url" . | quote }}
{{- else if eq $x.mode "sentinel" -}}
REDIS_SENTINELS: {{ join "," $x.sentinel.hosts | quote }}
REDIS_SENTINEL_MASTER: {{ $x.sentinel.masterName | quote }}
{{- else if eq $x.mode "cluster" -}}
REDIS_CLUSTER_NODES: {{ join "," $x.cluster.nodes | quote }}
{{- end }}
{{- if and (not .Values.redis.enabled) $x.tls }}
REDIS_TLS: "1"
{{- end }}
{{- if and (not .Values.redis.enabled) $x.waitReplicas }}
REDIS_WAIT_REPLICAS: {{ $x.waitReplicas | int64 | quote }}
{{- end }}
{{- with include "chat.redis.username" . }}
REDIS_USERNAME: {{ . | quote }}
{{- end }}
{{- if include "chat.redis.tlsCa" . }}
REDIS_TLS_CA_FILE: {{ printf "%s/ca.crt" (include "chat.redis.tlsCaDir" .) | quote }}
{{- end }}
BUS_MODE: {{ .Values.busMode | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
HISTORY_MAX_ENTRIES: {{ .Values.history.maxEntries | int64 | quote }}
HISTORY_MAX_AGE_SECONDS: {{ .Values.history.maxAgeSeconds | int64 | quote }}
{{- end }}

{{/* The chat's ConfigMap data. */}}
{{- define "chat.chat.env" -}}
{{- include "chat.validate" . -}}
{{- $c := .Values.chat -}}
{{- $jwt := .Values.auth.jwt -}}
PORT: {{ $c.port | int64 | quote }}
PROBE_PORT: {{ $c.probePort | int64 | quote }}
{{ include "chat.env.redis" . }}
AUTH_MODE: {{ .Values.auth.mode | quote }}
{{- if eq .Values.auth.mode "jwt" }}
{{- with $jwt.publicKey }}
JWT_PUBLIC_KEY: {{ . | quote }}
{{- end }}
{{- with $jwt.jwksUrl }}
JWT_JWKS_URL: {{ . | quote }}
{{- end }}
{{- with $jwt.issuer }}
JWT_ISSUER: {{ . | quote }}
{{- end }}
{{- with $jwt.audience }}
JWT_AUDIENCE: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $c.corsOrigins }}
CORS_ORIGINS: {{ join "," . | quote }}
{{- end }}
TRUST_PROXY: {{ $c.trustProxy | int64 | quote }}
RATE_LIMIT_MESSAGES_PER_SECOND: {{ $c.rateLimits.messagesPerSecond | int64 | quote }}
RATE_LIMIT_MESSAGES_BURST: {{ $c.rateLimits.messagesBurst | int64 | quote }}
RATE_LIMIT_JOINS_PER_MINUTE: {{ $c.rateLimits.joinsPerMinute | int64 | quote }}
RATE_LIMIT_CONNECTIONS_PER_IP: {{ $c.rateLimits.connectionsPerIp | int64 | quote }}
MAX_ROOMS_PER_CONNECTION: {{ $c.maxRoomsPerConnection | int64 | quote }}
MAX_CONNECTIONS_PER_USER: {{ $c.maxConnectionsPerUser | int64 | quote }}
MAX_TEXT_LENGTH: {{ $c.maxTextLength | int64 | quote }}
MAX_HTTP_BUFFER_SIZE: {{ $c.maxHttpBufferSize | int64 | quote }}
MAX_CLIENT_BUFFER_BYTES: {{ $c.maxClientBufferBytes | int64 | quote }}
FAST_PATH: {{ $c.fastPath | quote }}
PRESENCE_TTL_SECONDS: {{ $c.presenceTtlSeconds | int64 | quote }}
PRESENCE_ANNOUNCE_MAX_MEMBERS: {{ $c.presenceAnnounceMaxMembers | int64 | quote }}
HISTORY_ON_JOIN: {{ $c.historyOnJoin | int64 | quote }}
CLIENT_MSG_ID_TTL_SECONDS: {{ $c.clientMsgIdTtlSeconds | int64 | quote }}
SHUTDOWN_DELAY_SECONDS: {{ $c.shutdownDelaySeconds | int64 | quote }}
DRAIN_SECONDS: {{ $c.drainSeconds | int64 | quote }}
{{- if $c.tls.enabled }}
TLS_CERT_FILE: {{ printf "%s/tls.crt" (include "chat.tls.dir" .) | quote }}
TLS_KEY_FILE: {{ printf "%s/tls.key" (include "chat.tls.dir" .) | quote }}
{{- end }}
{{- end }}

{{/* The notifier's ConfigMap data. */}}
{{- define "chat.notifier.env" -}}
{{- $n := .Values.notifier -}}
PORT: {{ $n.port | int64 | quote }}
PROBE_PORT: {{ $n.probePort | int64 | quote }}
{{ include "chat.env.redis" . }}
NOTIFIER_STREAM: {{ $n.stream | quote }}
NOTIFIER_GROUP: {{ $n.group | quote }}
RATE_LIMIT_NOTIFIER_PER_SECOND: {{ $n.rateLimitPerSecond | int64 | quote }}
NOTIFIER_MAX_DATA_BYTES: {{ $n.maxDataBytes | int64 | quote }}
NOTIFIER_DEDUPE_WINDOW_SECONDS: {{ $n.dedupeWindowSeconds | int64 | quote }}
NOTIFIER_CLAIM_IDLE_MS: {{ $n.claimIdleMs | int64 | quote }}
NOTIFIER_BATCH_SIZE: {{ $n.batchSize | int64 | quote }}
NOTIFIER_POLL_MS: {{ $n.pollMs | int64 | quote }}
SHUTDOWN_DELAY_SECONDS: {{ $n.shutdownDelaySeconds | int64 | quote }}
{{- with $n.webhooks }}{{ if .enabled }}
{{- if not .urls }}{{ fail "notifier.webhooks.enabled needs at least one notifier.webhooks.urls entry" }}{{ end }}
WEBHOOK_URLS: {{ join "," .urls | quote }}
{{- with .events }}
WEBHOOK_EVENTS: {{ join "," . | quote }}
{{- end }}
WEBHOOK_TIMEOUT_MS: {{ .timeoutMs | int64 | quote }}
WEBHOOK_MAX_ATTEMPTS: {{ .maxAttempts | int64 | quote }}
WEBHOOK_RETRY_BASE_MS: {{ .retryBaseMs | int64 | quote }}
WEBHOOK_RETRY_MAX_MS: {{ .retryMaxMs | int64 | quote }}
WEBHOOK_BATCH_SIZE: {{ .batchSize | int64 | quote }}
WEBHOOK_BATCH_MS: {{ .batchMs | int64 | quote }}
{{- end }}{{ end }}
{{- end }}

{{/* The env entries of a service container that come from Secrets and the downward API. */}}
{{- define "chat.env.common" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if include "chat.redis.hasPassword" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "chat.redis.secretName" . }}
      key: {{ include "chat.redis.clientSecretKey" . }}
{{- end }}
{{- if include "chat.redis.hasSentinelPassword" . }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.sentinel.existingSecret | default (include "chat.redis.fullname" .) }}
      key: {{ if .Values.externalRedis.sentinel.existingSecret }}{{ .Values.externalRedis.sentinel.existingSecretKey }}{{ else }}sentinel-password{{ end }}
{{- end }}
{{- end }}

{{/*
TLS in the chat pod (chat.tls): the certificate and key from a kubernetes.io/tls Secret (e.g.
cert-manager's), mounted as a directory, never with subPath: the kubelet swaps the files in place
when the Secret changes, and the chat reloads them (TLS_CERT_FILE / TLS_KEY_FILE).
*/}}
{{- define "chat.tls.dir" }}/etc/chat/tls{{ end }}
{{- define "chat.tls.volumeMount" -}}
{{- if .Values.chat.tls.enabled }}
- name: tls
  mountPath: {{ include "chat.tls.dir" . }}
  readOnly: true
{{- end }}
{{- end }}
{{- define "chat.tls.volume" -}}
{{- $t := .Values.chat.tls -}}
{{- if $t.enabled }}
- name: tls
  secret:
    secretName: {{ required "chat.tls.secretName is required with chat.tls.enabled (a kubernetes.io/tls Secret, e.g. a cert-manager Certificate's)" $t.secretName }}
    items:
      - { key: tls.crt, path: tls.crt }
      - { key: tls.key, path: tls.key }
{{- end }}
{{- end }}

{{/* checksum/config of a service's pods: its environment and the CA bundle it trusts. */}}
{{- define "chat.checksum" -}}
{{- printf "%s\n%s" .env (.ctx.Values.externalRedis.tlsCa | toJson) | sha256sum -}}
{{- end }}
