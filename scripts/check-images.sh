#!/usr/bin/env bash
# Builds both images from the root Dockerfiles and checks them, then runs the container topology
# test (scripts/topology-test.mjs). Needs a Docker engine; the base images come from the registry,
# or on a machine without one from shared/tools/standin-images.sh (.ci/deploy-checks runs it).
#   IMAGE_TAG (default "check"): tag given to chat-platform/chat and chat-platform/notifier.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${IMAGE_TAG:-check}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
fail() { echo "check-images: FAIL: $*" >&2; exit 1; }
docker info >/dev/null 2>&1 || fail "no Docker engine answers (apt-get install docker.io; start dockerd)"

for svc in chat notifier; do
  image=chat-platform/$svc:$tag
  start=$SECONDS
  previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  if ! docker build --force-rm -f "Dockerfile.$svc" -t "$image" . >"$logdir/$svc.log" 2>&1; then
    tail -40 "$logdir/$svc.log" >&2
    fail "docker build -f Dockerfile.$svc failed (log above)"
  fi
  # The image this tag named before, now untagged: remove it so repeated runs do not pile up.
  if [[ -n $previous && $previous != "$(docker image inspect -f '{{.Id}}' "$image")" ]]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  echo "check-images: built $image in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1000000}'))"

  # Runs as the non-root node user, with no shell tricks at start (Node is PID 1).
  user=$(docker image inspect -f '{{.Config.User}}' "$image")
  [[ $user == node ]] || fail "$image runs as '$user', not node"
  cmd=$(docker image inspect -f '{{json .Config.Cmd}}' "$image")
  [[ $cmd == "[\"node\",\"services/$svc/dist/main.js\"]" ]] || fail "$image CMD is $cmd"
  # Production dependencies and built files only.
  leftovers=$(docker run --rm --read-only --entrypoint sh "$image" -c \
    'cd /app; for p in typescript vitest esbuild playwright-core @chat/testkit; do [ -e node_modules/$p ] && echo "node_modules/$p"; done; ls -d services/*/src services/*/test 2>/dev/null; true')
  [[ -z $leftovers ]] || fail "$image carries build-only files: $leftovers"
  docker run --rm --read-only --user 1000:1000 --cap-drop ALL --entrypoint node "$image" --input-type=module \
    -e "await import('@chat/shared'); await import('/app/services/$svc/dist/config.js')" \
    || fail "$image cannot load its own modules on a read-only root as uid 1000"
done
# The helm test hook runs scripts/helm-test-client.mjs from the chat image: it must load there.
docker run --rm --read-only --user 1000:1000 --entrypoint sh "chat-platform/chat:$tag" -c \
  'cd /app/scripts && node --input-type=module -e "await import(\"socket.io-client\")"' \
  || fail "socket.io-client does not load from /app/scripts in the chat image (the helm test needs it)"
echo "check-images: both images: user node, CMD node as PID 1, production dependencies only, load on a read-only root"

CHAT_IMAGE_TAG=$tag node scripts/topology-test.mjs
