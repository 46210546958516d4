# shellcheck shell=bash
# Suspended: stopped with a final savepoint, no pods left.
wait_until 180 "$JOB to be Suspended" phase_is Suspended
wait_until 120 "the pods of $JOB to be gone" no_job_pods
[ -n "$(field "sj/$JOB" '{.status.resumeFrom}')" ] || fail "suspended without a savepoint to resume from"
log "suspended with savepoint $(field "sj/$JOB" '{.status.resumeFrom}')"
