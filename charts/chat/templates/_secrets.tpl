{{/*
The data of the Secrets this chart generates (templates/secrets.yaml), "" when an existing Secret
is named instead. checksum/secrets (chat.secretsChecksum) hashes the same text, so a rotated
value rolls the pods that read it.
*/}}

{{- define "chat.secret.redis.data" -}}
{{- $r := .Values.redis -}}
{{- $name := include "chat.redis.fullname" . -}}
{{- if and $r.enabled (not $r.auth.existingSecret) -}}
redis-password: {{ include "chat.secretValue" (dict "ctx" $ "name" $name "key" "redis-password" "value" $r.auth.password "length" 32) }}
{{- if $r.acl.enabled }}
service-password: {{ include "chat.secretValue" (dict "ctx" $ "name" $name "key" "service-password" "value" $r.auth.servicePassword "length" 32) }}
producer-password: {{ include "chat.secretValue" (dict "ctx" $ "name" $name "key" "producer-password" "value" $r.auth.producerPassword "length" 32) }}
{{- end }}
{{- else if and (not $r.enabled) .Values.externalRedis.password (not .Values.externalRedis.existingSecret) -}}
redis-password: {{ .Values.externalRedis.password | b64enc }}
{{- end -}}
{{- $s := .Values.externalRedis.sentinel -}}
{{- if and (include "chat.redis.hasSentinelPassword" .) $s.password (not $s.existingSecret) }}
sentinel-password: {{ $s.password | b64enc }}
{{- end -}}
{{- end }}

{{- define "chat.secret.auth.data" -}}
{{- if and (include "chat.auth.usesSecret" .) (not .Values.auth.jwt.existingSecret) -}}
jwt-secret: {{ include "chat.secretValue" (dict "ctx" $ "name" (include "chat.auth.secretName" .) "key" "jwt-secret" "value" .Values.auth.jwt.secret "length" 48) }}
{{- end -}}
{{- end }}

{{- define "chat.secret.webhooks.data" -}}
{{- $w := .Values.notifier.webhooks -}}
{{- if and .Values.notifier.enabled $w.enabled (not $w.secret.existingSecret) -}}
webhook-secret: {{ include "chat.secretValue" (dict "ctx" $ "name" (include "chat.webhooks.secretName" .) "key" "webhook-secret" "value" $w.secret.value "length" 48) }}
{{- end -}}
{{- end }}

{{- define "chat.secret.notifier.data" -}}
{{- if and .Values.notifier.enabled (not .Values.notifier.apiKeys.existingSecret) -}}
api-keys: {{ include "chat.secretValue" (dict "ctx" $ "name" (include "chat.notifier.secretName" .) "key" "api-keys" "value" (join "," .Values.notifier.apiKeys.keys) "length" 40) }}
{{- end -}}
{{- end }}

{{/* The TLS Secret of the chat pods holds no checksum: the chat reloads a rotated certificate itself. */}}

{{/*
Redis's maxmemory in bytes: redis.maxmemory when set, else redis.maxmemoryPercent of the container's
memory limit. With noeviction, Redis then refuses writes (the chat answers `unavailable`) instead
of growing into the limit, being OOMKilled, replaying its AOF into the same limit: CrashLoopBackOff.
The headroom covers the AOF rewrite's copy-on-write pages and client buffers.
*/}}
{{- define "chat.redis.maxmemory" -}}
{{- $r := .Values.redis -}}
{{- if $r.maxmemory -}}
{{- $r.maxmemory -}}
{{- else -}}
{{- $limit := toString ((($r.resources | default dict).limits | default dict).memory | default "") -}}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|k|K|M|G|T)?$" $limit) -}}
{{- fail (printf "redis.resources.limits.memory must be a whole quantity like 512Mi (got %q): Redis's maxmemory is derived from it; or set redis.maxmemory" $limit) -}}
{{- end -}}
{{- $units := dict "" 1 "k" 1000 "K" 1000 "Ki" 1024 "M" 1000000 "Mi" 1048576 "G" 1000000000 "Gi" 1073741824 "T" 1000000000000 "Ti" 1099511627776 -}}
{{- $num := regexReplaceAll "[^0-9].*$" $limit "" | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $limit "" -}}
{{- div (mul $num (get $units $unit) (int64 $r.maxmemoryPercent)) 100 -}}
{{- end -}}
{{- end }}

{{/*
redis-server's ACL users, as arguments after --requirepass (the default user keeps its own
password: the probes use it). The services' user cannot run FLUSHALL, CONFIG, DEBUG, KEYS,
SHUTDOWN or any other @dangerous/@admin command; the producers' user may only XADD to the
notifier's stream. Each token is single-quoted for sh; passwords come from the environment.
*/}}
{{- define "chat.redis.aclArgs" -}}
{{- $a := .Values.redis.acl -}}
{{- $svc := list $a.serviceUser "on" "\">$REDIS_SERVICE_PASSWORD\"" -}}
{{- range splitList " " $a.serviceRules }}{{ if . }}{{ $svc = append $svc (squote .) }}{{ end }}{{ end -}}
{{- $prod := list $a.producerUser "on" "\">$REDIS_PRODUCER_PASSWORD\"" "resetchannels" "-@all" "+xadd" (squote (printf "~%s" .Values.notifier.stream)) -}}
--user {{ join " " $svc }} --user {{ join " " $prod }}
{{- end }}

{{- define "chat.redis.conf" -}}
{{- $r := .Values.redis -}}
# requirepass and the ACL users are not here: their passwords come from the Secret, through the
# environment (see the StatefulSet's args).
port {{ $r.port }}
bind * -::*
dir /data
appendonly yes
appendfilename "appendonly.aof"
appendfsync {{ $r.appendfsync }}
aof-use-rdb-preamble yes
# Refuse writes at maxmemory (the chat answers `unavailable`), never evict: an evicted room log
# or session key would lose acked data. Derived from the container's memory limit
# (redis.maxmemoryPercent), so Redis fills up before the kernel OOMKills it.
maxmemory {{ include "chat.redis.maxmemory" . }}
maxmemory-policy noeviction
{{- end }}

{{/*
volumeClaimTemplates cannot change on a StatefulSet: helm upgrade would fail with the API
server's "updates to statefulset spec ... are forbidden". When the cluster answers (lookup), a
changed redis.persistence is refused here with what to do instead.
*/}}
{{- define "chat.redis.checkPersistence" -}}
{{- $p := .Values.redis.persistence -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "chat.redis.fullname" .) | default dict -}}
{{- range (($sts.spec | default dict).volumeClaimTemplates | default list) -}}
{{- if eq .metadata.name "data" -}}
{{- $was := dict "size" (toString .spec.resources.requests.storage) "storageClass" (toString (.spec.storageClassName | default "")) "accessModes" (toJson .spec.accessModes) -}}
{{- $now := dict "size" (toString $p.size) "storageClass" (toString $p.storageClass) "accessModes" (toJson $p.accessModes) -}}
{{- range $k, $v := $now -}}
{{- if and (ne $v (get $was $k)) (or (ne $k "storageClass") $v) -}}
{{- fail (printf "redis.persistence.%s cannot change on an installed release (was %s, now %s): a StatefulSet's volumeClaimTemplates are immutable. To grow the volume, resize the PVC itself (kubectl edit pvc data-%s-0, with an expandable StorageClass) and keep the old value here; to move the data, follow docs/deploy.md#changing-redis-persistence" $k (get $was $k) $v (include "chat.redis.fullname" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
