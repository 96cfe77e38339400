{{/* What every pod template of the chart shares: security contexts, pull secrets, annotations. */}}

{{/*
The restricted Pod Security Standard, for pods and containers.
*/}}
{{- define "chat.podSecurityContext" -}}
{{- if kindIs "map" .override -}}
{{- toYaml .override -}}
{{- else -}}
runAsNonRoot: true
{{- if .uid }}
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end }}

{{/*
The container securityContext; a map in <component>.containerSecurityContext replaces it (e.g.
OpenShift, which assigns its own uid: set runAsUser null, or the *SecurityContext maps).
*/}}
{{- define "chat.containerSecurityContext" -}}
{{- if kindIs "map" .override -}}
{{- toYaml .override -}}
{{- else -}}
runAsNonRoot: true
{{- if .uid }}
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
{{- end }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end }}

{{/* imagePullSecrets of every pod: global.imagePullSecrets, then imagePullSecrets. */}}
{{- define "chat.imagePullSecrets" -}}
{{- $all := concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) -}}
{{- with $all }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end -}}
{{- end }}

{{/* The Redis image: global.imageRegistry, else redis.image.registry, before its repository. */}}
{{- define "chat.redis.image" -}}
{{- $i := .Values.redis.image -}}
{{- $registry := .Values.global.imageRegistry | default $i.registry -}}
{{- $repo := ternary (printf "%s/%s" (trimSuffix "/" $registry) $i.repository) $i.repository (ne $registry "") -}}
{{- if $i.digest }}{{ printf "%s@%s" $repo $i.digest }}{{ else }}{{ printf "%s:%s" $repo (toString $i.tag) }}{{ end -}}
{{- end }}

{{- define "chat.redis.serviceAccountName" -}}
{{- if .Values.redis.serviceAccount.create }}
{{- default (include "chat.redis.fullname" .) .Values.redis.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.redis.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* prometheus.io/* annotations for a pod whose metrics are on its probe port. */}}
{{- define "chat.prometheusAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: "/metrics"
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints: each constraint gets the component's selector as its labelSelector
unless it brings its own. include with (dict "ctx" $ "component" "chat" "constraints" list).
*/}}
{{- define "chat.topologySpread" -}}
{{- with .constraints }}
topologySpreadConstraints:
{{- range . }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "chat.componentSelectorLabels" (dict "ctx" $.ctx "component" $.component) | fromYaml)) }}
{{- end }}
  - {{ toYaml $c | nindent 4 | trim }}
{{- end }}
{{- end }}
{{- end }}
