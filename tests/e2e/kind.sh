#!/usr/bin/env bash
# The kind end-to-end test on a real cluster: a Kafka → Kafka exactly-once StreamJob, then the
# operator's own checks on the windowed-counts example.
# Needs Docker (with a running engine), kind and kubectl; without them it prints SKIP and exits 0.
#
# It creates the kind cluster (unless it exists), builds and loads the images, deploys
# manifests/, then runs the numbered steps of each scenario in order: each NN-*.sh acts,
# NN-assert.sh checks what the step must have caused.
#  - tests/e2e/kafka-exactly-once/: the Kafka job (its name, topics and checkpoint prefix are
#    per run, so the test can run again on a kept cluster), a pod deleted mid-stream (the time
#    until it is gone and the recovery time are printed), savepoint, suspend, resume, verifier;
#  - tests/e2e/operator/: names the CRD refuses, manifests/examples/streamjob-windowed-counts.yaml
#    applied as written (file sink on its PVC), then suspended, deleted, recreated under the same
#    name and suspended again: the second object stops with its own savepoint (no rewind);
#    then resumed and deleted with --cascade=foreground: the final savepoint is still taken.
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
WINDOWED_EXAMPLE=manifests/examples/streamjob-windowed-counts.yaml
SCENARIOS="tests/e2e/kafka-exactly-once tests/e2e/operator"
PRODUCER_PID=""
export NS RECORDS RUN_ID JOB INPUT_TOPIC OUTPUT_TOPIC EXAMPLE WINDOWED_EXAMPLE
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
  log "cleanup: deleting StreamJob $JOB, the windowed-counts example and topics"
  kube delete sj "$JOB" --ignore-not-found --wait=true --timeout=120s || true
  kube delete -f "$WINDOWED_EXAMPLE" --ignore-not-found --wait=true --timeout=120s || true
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
for SCENARIO in $SCENARIOS; do
  log "=== scenario $SCENARIO"
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
done
log "PASS: every one of $RECORDS input records is in the output exactly once (deleted pod gone in ${TERMINATED_IN}s, recovery took ${RECOVERY_SECONDS}s); the operator checks passed"
