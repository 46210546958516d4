# shellcheck shell=bash
# The operator launched the job and all its worker pods are ready.
wait_until 300 "StreamJob $JOB to be Running" phase_is Running
workers=$(field "sj/$JOB" '{.spec.workers}')
[ "$(job_pods)" = "${workers:-1}" ] || fail "phase Running with $(job_pods) pods of $JOB, not spec.workers (${workers:-1})"
[ "$(field "sj/$JOB" '{.status.workers.ready}')" = "${workers:-1}" ] ||
  fail "status.workers.ready of $JOB is not ${workers:-1}"
kube wait --for=condition=Ready pod -l "sluice.dev/job=$JOB" --timeout=60s
