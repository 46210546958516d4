# shellcheck shell=bash
# A new attempt runs, restored from a checkpoint.
recovered() {
  local attempt
  attempt=$(field "sj/$JOB" '{.status.attempt}')
  [ -n "$attempt" ] && [ "$attempt" -gt "$KILLED_ATTEMPT" ] && phase_is Running
}
wait_until 300 "$JOB to recover with a new attempt" recovered
RECOVERY_SECONDS=$(($(date +%s) - KILLED_AT))
log "recovered in ${RECOVERY_SECONDS}s: attempt $(field "sj/$JOB" '{.status.attempt}'), restored from $(field "sj/$JOB" '{.status.restoredFrom}')"
[ -n "$(field "sj/$JOB" '{.status.restoredFrom}')" ] || fail "the new attempt did not restore from a checkpoint"
