{{/*
Expand the name of the chart.
*/}}
{{- define "chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated to 63 characters (some Kubernetes name fields are
limited to that). A release name that contains the chart name is used as is: release "chat" gives
"chat", "chat-redis", "chat-notifier".
*/}}
{{- define "chat.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Components add app.kubernetes.io/component through chat.componentLabels.
*/}}
{{- define "chat.labels" -}}
helm.sh/chart: {{ include "chat.chart" . }}
{{ include "chat.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chat-platform
{{- end }}

{{/*
Selector labels
*/}}
{{- define "chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component: include with (dict "ctx" $ "component" "chat").
*/}}
{{- define "chat.componentLabels" -}}
{{ include "chat.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of a pod template: the selector labels, the component and who manages it, but never
helm.sh/chart or app.kubernetes.io/version. A label change rolls the pods, so a chart or app
version bump would restart Redis (and every chat pod's readiness with it) for nothing. Chat and
notifier still roll on an app version bump, through their image tag.
include with (dict "ctx" $ "component" "chat").
*/}}
{{- define "chat.podLabels" -}}
{{ include "chat.componentSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: chat-platform
{{- end }}

{{- define "chat.componentSelectorLabels" -}}
{{ include "chat.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Names of the components' objects. */}}
{{- define "chat.notifier.fullname" -}}
{{- printf "%s-notifier" (include "chat.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "chat.redis.fullname" -}}
{{- printf "%s-redis" (include "chat.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "chat.pods.fullname" -}}
{{- printf "%s-pods" (include "chat.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chat.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: include with (dict "ctx" $ "image" .Values.chat.image). The tag defaults to
the global image.tag, then to the chart's appVersion; a digest wins over both.
*/}}
{{- define "chat.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- $repo := .image.repository -}}
{{- $registry := .ctx.Values.global.imageRegistry | default .ctx.Values.image.registry -}}
{{- if $registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}{{ end -}}
{{- if .image.digest }}{{ printf "%s@%s" $repo .image.digest }}{{ else }}{{ printf "%s:%s" $repo (toString $tag) }}{{ end -}}
{{- end }}

{{/*
Redis: the URL the services get (never with the password in it), and where the password is.
*/}}
{{- define "chat.redis.url" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "chat.redis.fullname" . }}:{{ .Values.redis.port }}/{{ .Values.redis.db }}
{{- else if ne .Values.externalRedis.mode "standalone" -}}
{{- else -}}
{{- required "externalRedis.url is required when redis.enabled=false (e.g. rediss://10.0.0.3:6378/0, without the password)" .Values.externalRedis.url -}}
{{- end -}}
{{- end }}

{{/* True (non-empty) when the services get a REDIS_SENTINEL_PASSWORD. */}}
{{- define "chat.redis.hasSentinelPassword" -}}
{{- $s := .Values.externalRedis.sentinel -}}
{{- if and (not .Values.redis.enabled) (eq .Values.externalRedis.mode "sentinel") (or $s.password $s.existingSecret) }}true{{ end -}}
{{- end }}

{{/* True (non-empty) when the services get a REDIS_PASSWORD. */}}
{{- define "chat.redis.hasPassword" -}}
{{- if .Values.redis.enabled -}}true
{{- else if or .Values.externalRedis.existingSecret .Values.externalRedis.password -}}true
{{- end -}}
{{- end }}

{{/* True (non-empty) when the in-cluster Redis has the services' and producers' ACL users. */}}
{{- define "chat.redis.acl" -}}
{{- if and .Values.redis.enabled .Values.redis.acl.enabled }}true{{ end -}}
{{- end }}

{{/* The ACL user the services connect as (REDIS_USERNAME; "" = the default user). */}}
{{- define "chat.redis.username" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.acl.enabled }}{{ .Values.redis.acl.serviceUser }}{{ end -}}
{{- else -}}
{{- .Values.externalRedis.username -}}
{{- end -}}
{{- end }}

{{- define "chat.redis.secretName" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecret | default (include "chat.redis.fullname" .) -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret | default (include "chat.redis.fullname" .) -}}
{{- end -}}
{{- end }}

{{/* Key of the default user's password (Redis's requirepass; the probes use it). */}}
{{- define "chat.redis.secretKey" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecretKey -}}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecretKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end }}

{{/* Key of the password the services use: their ACL user's, else the default user's. */}}
{{- define "chat.redis.clientSecretKey" -}}
{{- if include "chat.redis.acl" . -}}
{{- if .Values.redis.auth.existingSecret }}{{ .Values.redis.auth.existingSecretServiceKey }}{{ else }}service-password{{ end -}}
{{- else -}}
{{- include "chat.redis.secretKey" . -}}
{{- end -}}
{{- end }}

{{/* Key of the producers' ACL user's password (they may only XADD to the notifier's stream). */}}
{{- define "chat.redis.producerSecretKey" -}}
{{- if .Values.redis.auth.existingSecret }}{{ .Values.redis.auth.existingSecretProducerKey }}{{ else }}producer-password{{ end -}}
{{- end }}

{{/* The Secret with JWT_SECRET (auth.mode=jwt with a shared HS256 secret). */}}
{{- define "chat.auth.usesSecret" -}}
{{- if and (eq .Values.auth.mode "jwt") (not .Values.auth.jwt.publicKey) (not .Values.auth.jwt.jwksUrl) -}}true{{- end -}}
{{- end }}
{{- define "chat.auth.secretName" -}}
{{- .Values.auth.jwt.existingSecret | default (printf "%s-auth" (include "chat.fullname" .)) -}}
{{- end }}
{{- define "chat.auth.secretKey" -}}
{{- if .Values.auth.jwt.existingSecret }}{{ .Values.auth.jwt.existingSecretKey }}{{ else }}jwt-secret{{ end -}}
{{- end }}

{{- define "chat.notifier.secretName" -}}
{{- .Values.notifier.apiKeys.existingSecret | default (include "chat.notifier.fullname" .) -}}
{{- end }}
{{/* The webhook signing secret: its own Secret, so that it works whether the API keys are generated or existing. */}}
{{- define "chat.webhooks.secretName" -}}
{{- .Values.notifier.webhooks.secret.existingSecret | default (printf "%s-webhooks" (include "chat.notifier.fullname" .)) -}}
{{- end }}
{{- define "chat.webhooks.secretKey" -}}
{{- if .Values.notifier.webhooks.secret.existingSecret }}{{ .Values.notifier.webhooks.secret.existingSecretKey }}{{ else }}webhook-secret{{ end -}}
{{- end }}
{{- define "chat.notifier.secretKey" -}}
{{- if .Values.notifier.apiKeys.existingSecret }}{{ .Values.notifier.apiKeys.existingSecretKey }}{{ else }}api-keys{{ end -}}
{{- end }}

{{/*
The base64 value of one key of a Secret this chart generates: the value given in values, else
the one already in the cluster (so an upgrade keeps it), else a new random one.
include with (dict "ctx" $ "name" "<secret name>" "key" "<key>" "value" "<given or empty>" "length" 32)
*/}}
{{- define "chat.secretValue" -}}
{{- $cache := get .ctx "chatSecretCache" | default dict -}}
{{- $_ := set .ctx "chatSecretCache" $cache -}}
{{- $id := printf "%s/%s" .name .key -}}
{{- if not (hasKey $cache $id) -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name | default dict -}}
{{- $data := get $existing "data" | default dict -}}
{{- if .value -}}
{{- $_ := set $cache $id (.value | b64enc) -}}
{{- else if hasKey $data .key -}}
{{- $_ := set $cache $id (index $data .key) -}}
{{- else if and .ctx.Release.IsUpgrade (not $existing) -}}
{{- /* A Secret that exists but lacks this key (a key added by a newer chart) gets it generated. */ -}}
{{- fail (printf "Secret %s (key %s) is generated at install and kept by lookup, but this upgrade cannot see it: it was deleted, or lookup cannot work here (helm template, --dry-run=client, Argo CD). Give the value or an existingSecret in values (docs/deploy.md#gitops-and-existing-secrets)." .name .key) -}}
{{- else -}}
{{- $_ := set $cache $id (randAlphaNum (int .length) | b64enc) -}}
{{- end -}}
{{- end -}}
{{- index $cache $id -}}
{{- end }}

{{/*
checksum/secrets of a pod template: the Secrets its pods read, so rotating one rolls exactly the
pods that use it (the Bitnami way). A Secret the chart renders is hashed as rendered (the cache in
chat.secretValue makes every use in one render agree). An existingSecret is read with lookup when
the cluster answers (helm upgrade), else only its name counts (helm template, Argo CD: rename the
Secret to rotate, or use a reloader; docs/deploy.md#rotating-secrets).
include with (dict "ctx" $ "secrets" (list "redis" "auth")).
*/}}
{{- define "chat.secretsChecksum" -}}
{{- $ctx := .ctx -}}
{{- $parts := list -}}
{{- range .secrets -}}
{{- $data := include (printf "chat.secret.%s.data" .) $ctx -}}
{{- if $data -}}
{{- $parts = append $parts $data -}}
{{- else -}}
{{- $name := include (printf "chat.%s.secretName" .) $ctx -}}
{{- $found := get (lookup "v1" "Secret" $ctx.Release.Namespace $name | default dict) "data" | default dict -}}
{{- $parts = append $parts (printf "%s=%s" $name (toJson $found)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $parts | sha256sum -}}
{{- end }}

{{/*
Chat's terminationGracePeriodSeconds: the preStop sleep, the readiness wait and the drain window,
plus a margin; a value set by hand must be larger than the first three added up.
*/}}
{{- define "chat.chat.preStopSleepSeconds" -}}
{{- $c := .Values.chat -}}
{{- if kindIs "invalid" $c.preStopSleepSeconds -}}
{{- ternary 10 0 (and (eq $c.service.externalTrafficPolicy "Local") (ne $c.service.type "ClusterIP")) -}}
{{- else -}}
{{- int $c.preStopSleepSeconds -}}
{{- end -}}
{{- end }}

{{- define "chat.chat.terminationGracePeriodSeconds" -}}
{{- $c := .Values.chat -}}
{{- $needed := add (int (include "chat.chat.preStopSleepSeconds" .)) (int $c.shutdownDelaySeconds) (int $c.drainSeconds) -}}
{{- if $c.terminationGracePeriodSeconds -}}
{{- if le (int $c.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "chat.terminationGracePeriodSeconds (%d) must be greater than the preStop sleep + chat.shutdownDelaySeconds + chat.drainSeconds (%d), or the kubelet kills pods mid-drain" (int $c.terminationGracePeriodSeconds) (int $needed)) -}}
{{- end -}}
{{- int $c.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $needed (int $c.terminationMarginSeconds) -}}
{{- end -}}
{{- end }}

