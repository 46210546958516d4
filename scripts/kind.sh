#!/usr/bin/env bash
# Sluice on a local kind cluster (needs Docker, kind and kubectl). Used by the Makefile's kind-*
# targets and by tests/e2e/kind.sh.
#   scripts/kind.sh up       create the cluster from kind-config.yaml (no-op if it exists)
#   scripts/kind.sh images   build both images and load them into the cluster
#   scripts/kind.sh deploy   apply manifests/ and wait until everything is ready
#   scripts/kind.sh down     delete the cluster
# Variables: KIND_CLUSTER (sluice), IMAGE_TAG (0.1.0), DEPLOY_TIMEOUT (300s).
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER:-sluice}"
tag="${IMAGE_TAG:-0.1.0}"
timeout="${DEPLOY_TIMEOUT:-300s}"
runtime_image="ghcr.io/sluice/sluice-runtime:$tag"
operator_image="ghcr.io/sluice/sluice-operator:$tag"
kube=(kubectl --context "kind-$cluster")

up() {
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    echo "kind cluster $cluster exists"
  else
    kind create cluster --name "$cluster" --config kind-config.yaml --wait 120s
  fi
}

images() {
  docker build --target runtime -t "$runtime_image" .
  docker build --target operator -t "$operator_image" .
  kind load docker-image --name "$cluster" "$runtime_image" "$operator_image"
}

deploy() {
  "${kube[@]}" apply --server-side --force-conflicts -k manifests
  "${kube[@]}" wait --for=condition=Established --timeout="$timeout" crd/streamjobs.sluice.dev
  "${kube[@]}" -n sluice-system rollout status deployment/sluice-operator --timeout="$timeout"
  "${kube[@]}" -n sluice rollout status deployment/minio --timeout="$timeout"
  "${kube[@]}" -n sluice rollout status statefulset/kafka --timeout="$timeout"
  "${kube[@]}" -n sluice wait --for=condition=Complete --timeout="$timeout" job/minio-create-bucket
  echo "Sluice is deployed on kind-$cluster"
}

down() {
  kind delete cluster --name "$cluster"
}

case "${1:-}" in
  up) up ;;
  images) images ;;
  deploy) deploy ;;
  down) down ;;
  *) echo "usage: $0 up|images|deploy|down" >&2; exit 2 ;;
esac
