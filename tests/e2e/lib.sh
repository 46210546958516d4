# shellcheck shell=bash
# Helpers of the kind end-to-end test, sourced by tests/e2e/kind.sh (and so by every step).
# Only POSIX date/awk/sed features: it also runs on macOS.

# kubectl against the test cluster, in the jobs' namespace.
kube() { kubectl --context "kind-$KIND_CLUSTER" -n "$NS" "$@"; }

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

fail() {
  log "FAIL: $*" >&2
  exit 1
}

# Prints a field of an object (empty when the object or the field is missing).
field() { kube get "$1" -o "jsonpath=$2" 2>/dev/null || true; }

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 2 s until it succeeds.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + timeout))
  log "waiting for $what"
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for $what"
    sleep 2
  done
}

phase_is() { [ "$(field "sj/$JOB" '{.status.phase}')" = "$1" ]; }

# job_phase_is NAME PHASE: the phase of StreamJob NAME is PHASE.
job_phase_is() { [ "$(field "sj/$1" '{.status.phase}')" = "$2" ]; }

# Number of the job's pods, in any state.
job_pods() { kube get pods -l "sluice.dev/job=$JOB" -o name 2>/dev/null | wc -l | tr -d ' '; }

no_job_pods() { [ "$(job_pods)" = 0 ]; }

# A Kafka command-line tool run inside the broker's pod, with a small heap of its own.
kafka_tool() {
  local tool=$1
  shift
  kube exec kafka-0 -- env KAFKA_HEAP_OPTS=-Xmx192m "/opt/kafka/bin/$tool" --bootstrap-server localhost:9092 "$@"
}
