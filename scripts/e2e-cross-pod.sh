#!/usr/bin/env bash
# The cross-pod check on a live cluster, outside `helm test`: runs scripts/helm-test-client.mjs
# in a pod of the chat image with MIN_PODS set, so it fails unless it finds (and delivers across)
# at least that many ready chat pods through the headless Service, then delivers between clients
# that connected through the Service and landed on different pods. Settings are read from the
# release's ConfigMap and Service, as the helm test hook gets them from the chart.
#   scripts/e2e-cross-pod.sh [namespace=chat] [release=chat] [min-pods=2]
set -euo pipefail
ns=${1:-chat} release=${2:-chat} min=${3:-2}
image=$(kubectl -n "$ns" get deploy "$release" -o jsonpath='{.spec.template.spec.containers[0].image}')
cm() { kubectl -n "$ns" get configmap "$release" -o jsonpath="{.data.$1}"; }
auth=$(cm AUTH_MODE) probe_port=$(cm PROBE_PORT) pod_port=$(cm PORT) issuer=$(cm JWT_ISSUER) audience=$(cm JWT_AUDIENCE)
port=$(kubectl -n "$ns" get svc "$release" -o jsonpath='{.spec.ports[0].port}')
affinity=$(kubectl -n "$ns" get svc "$release" -o jsonpath='{.spec.sessionAffinity}')
pod="$release-xpod-$(date +%s)"
jwt_env=""
if [[ $auth == jwt ]]; then
  jwt_env=$(printf -- '- name: JWT_SECRET\n          valueFrom: { secretKeyRef: { name: %s-auth, key: jwt-secret } }' "$release")
fi
kubectl -n "$ns" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels: { app.kubernetes.io/component: e2e }
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
        - { name: CHAT_URL, value: "http://$release:$port" }
        - { name: CHAT_HEADLESS_HOST, value: "$release-pods" }
        - { name: CHAT_POD_PORT, value: "$pod_port" }
        - { name: CHAT_METRICS_PORT, value: "$probe_port" }
        - { name: SESSION_AFFINITY, value: "$affinity" }
        - { name: MIN_PODS, value: "$min" }
        - { name: AUTH_MODE, value: "$auth" }
        - { name: JWT_ISSUER, value: "$issuer" }
        - { name: JWT_AUDIENCE, value: "$audience" }
        $jwt_env
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
