#!/usr/bin/env bash
# The kind end-to-end test: a Kafka → Kafka exactly-once StreamJob on a real cluster.
# Needs Docker (with a running engine), kind and kubectl; without them it prints SKIP and exits 0.
#
# It creates the kind cluster (unless it exists), builds and loads the images, deploys
# manifests/, then runs the numbered steps of tests/e2e/kafka-exactly-once/ in order: each
# NN-*.sh acts, NN-assert.sh checks what the step must have caused. The job, its topics and its
# checkpoint prefix get a per-run name, so the test can run again on a kept cluster.
# Cleanup: the job is deleted; the cluster too if this run created it (KEEP_CLUSTER=1 keeps it).
#
# Variables: KIND_CLUSTER (sluice), RECORDS (60000 input records), SKIP_BUILD=1 (images loaded).
set -euo pipefail

for tool in docker kind kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: tests/e2e/kind.sh needs Docker, kind and kubectl; '$tool' is not installed"
    exit 0
  fi
done
if ! docker info >/dev/null 2>&1; then
  echo "SKIP: tests/e2e/kind.sh needs a running Docker engine; 'docker info' fails"
  exit 0
fi

cd "$(dirname "$0")/../.."
export KIND_CLUSTER="${KIND_CLUSTER:-sluice}"
NS=sluice
RECORDS="${RECORDS:-60000}"
RUN_ID="e2e-$(date +%s)"
JOB="$RUN_ID"
INPUT_TOPIC="$RUN_ID-in"
OUTPUT_TOPIC="$RUN_ID-out"
EXAMPLE=manifests/examples/streamjob-kafka-to-kafka.yaml
SCENARIO=tests/e2e/kafka-exactly-once
PRODUCER_PID=""
export NS RECORDS RUN_ID JOB INPUT_TOPIC OUTPUT_TOPIC EXAMPLE
# shellcheck source=tests/e2e/lib.sh
source tests/e2e/lib.sh

created_cluster=0
if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  created_cluster=1
fi

cleanup() {
  local rc=$?
  if [ -n "$PRODUCER_PID" ]; then kill "$PRODUCER_PID" 2>/dev/null || true; fi
  if [ "$rc" != 0 ]; then
    log "the test failed; state of the job and its pods:"
    kube get sj,pods -o wide || true
    kube describe sj "$JOB" || true
    kubectl --context "kind-$KIND_CLUSTER" -n sluice-system logs deployment/sluice-operator --tail=100 || true
  fi
  log "cleanup: deleting StreamJob $JOB and topics"
  kube delete sj "$JOB" --ignore-not-found --wait=true --timeout=120s || true
  kafka_tool kafka-topics.sh --delete --if-exists --topic "$INPUT_TOPIC" >/dev/null 2>&1 || true
  kafka_tool kafka-topics.sh --delete --if-exists --topic "$OUTPUT_TOPIC" >/dev/null 2>&1 || true
  if [ "$created_cluster" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "cleanup: deleting the kind cluster $KIND_CLUSTER"
    scripts/kind.sh down || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "cluster $KIND_CLUSTER, run $RUN_ID, $RECORDS records"
scripts/kind.sh up
if [ "${SKIP_BUILD:-0}" != 1 ]; then scripts/kind.sh images; fi
scripts/kind.sh deploy

# Steps in number order; within a number the actions first, then NN-assert.sh.
# (A plain string, not an array: macOS's bash 3.2 rejects an empty array under `set -u`.)
numbers=""
for f in "$SCENARIO"/[0-9][0-9]-*.sh; do
  n=$(basename "$f" | cut -c1-2)
  case " $numbers " in *" $n "*) ;; *) numbers="$numbers $n" ;; esac
done
for n in $numbers; do
  for step in "$SCENARIO/$n"-*.sh; do
    [ "$step" != "$SCENARIO/$n-assert.sh" ] || continue
    log "== step $(basename "$step")"
    # shellcheck source=/dev/null
    source "$step"
  done
  if [ -f "$SCENARIO/$n-assert.sh" ]; then
    log "== assert $n"
    # shellcheck source=/dev/null
    source "$SCENARIO/$n-assert.sh"
  fi
done
log "PASS: every one of $RECORDS input records is in the output exactly once (recovery took ${RECOVERY_SECONDS}s)"
