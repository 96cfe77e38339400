#!/usr/bin/env bash
# The cross-pod check on a live cluster, outside `helm test`: runs scripts/helm-test-client.mjs
# in a pod of the chat image with MIN_PODS set, so it fails unless it finds (and delivers across)
# at least that many ready chat pods through the headless Service, then delivers between clients
# that connected through the Service and landed on different pods. Settings are read from the
# release's ConfigMap and Service, as the helm test hook gets them from the chart. The chat's
# objects are found by their labels, so any release name works ("chat", or "prod" → "prod-chat").
#   scripts/e2e-cross-pod.sh [namespace=chat] [release=chat] [min-pods=2]
set -euo pipefail
ns=${1:-chat} release=${2:-chat} min=${3:-2}
name=$(kubectl -n "$ns" get deploy -l "app.kubernetes.io/instance=$release,app.kubernetes.io/component=chat" -o jsonpath='{.items[0].metadata.name}')
[[ -n $name ]] || { echo "e2e-cross-pod: no chat Deployment of release $release in namespace $ns" >&2; exit 1; }
chart_name=$(kubectl -n "$ns" get deploy "$name" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/name}')
image=$(kubectl -n "$ns" get deploy "$name" -o jsonpath='{.spec.template.spec.containers[0].image}')
cm() { kubectl -n "$ns" get configmap "$name" -o jsonpath="{.data.$1}"; }
auth=$(cm AUTH_MODE) probe_port=$(cm PROBE_PORT) pod_port=$(cm PORT) issuer=$(cm JWT_ISSUER) audience=$(cm JWT_AUDIENCE)
port=$(kubectl -n "$ns" get svc "$name" -o jsonpath='{.spec.ports[0].port}')
affinity=$(kubectl -n "$ns" get svc "$name" -o jsonpath='{.spec.sessionAffinity}')
pod="$name-xpod-$(date +%s)"
# The HS256 secret as a file (as the helm test gets it), never in the pod's environment.
jwt_env="" jwt_mount="" jwt_volume=""
if [[ $auth == jwt ]]; then
  jwt_env='- { name: JWT_SECRET_FILE, value: /etc/chat-test/jwt-secret }'
  jwt_mount='volumeMounts: [{ name: secrets, mountPath: /etc/chat-test, readOnly: true }]'
  jwt_volume=$(printf 'volumes: [{ name: secrets, secret: { secretName: %s-auth, items: [{ key: jwt-secret, path: jwt-secret }] } }]' "$name")
fi
kubectl -n "$ns" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  # The test component's labels: the chat NetworkPolicy lets it read each pod's /metrics.
  labels: { app.kubernetes.io/name: "$chart_name", app.kubernetes.io/instance: "$release", app.kubernetes.io/component: test }
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: check
      image: $image
      imagePullPolicy: IfNotPresent
      command: [node, scripts/helm-test-client.mjs]
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      resources: { requests: { cpu: 50m, memory: 64Mi }, limits: { memory: 128Mi } }
      env:
        - { name: CHAT_URL, value: "http://$name:$port" }
        - { name: CHAT_HEADLESS_HOST, value: "$name-pods" }
        - { name: CHAT_POD_PORT, value: "$pod_port" }
        - { name: CHAT_METRICS_PORT, value: "$probe_port" }
        - { name: SESSION_AFFINITY, value: "$affinity" }
        - { name: MIN_PODS, value: "$min" }
        - { name: AUTH_MODE, value: "$auth" }
        - { name: JWT_ISSUER, value: "$issuer" }
        - { name: JWT_AUDIENCE, value: "$audience" }
        $jwt_env
      $jwt_mount
  $jwt_volume
YAML
trap 'kubectl -n "$ns" delete pod "$pod" --ignore-not-found --wait=false >/dev/null' EXIT
phase=""
for _ in $(seq 90); do
  phase=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 2
done
kubectl -n "$ns" logs "$pod" || true
[[ $phase == Succeeded ]] || { echo "e2e-cross-pod: FAIL (pod phase: ${phase:-unknown})" >&2; exit 1; }
echo "e2e-cross-pod: OK with at least $min chat pods"
