# shellcheck shell=bash
# The savepoint completes and status names it (.status.savepoints.last: the newest trigger,
# crds/src/savepoints.rs).
savepoint_done() {
  [ "$(field "sj/$JOB" '{.status.savepoints.last.value}')" = "$SAVEPOINT_TRIGGER" ] || return 1
  local state
  state=$(field "sj/$JOB" '{.status.savepoints.last.state}')
  [ "$state" != Failed ] || fail "savepoint failed: $(field "sj/$JOB" '{.status.savepoints.last.error}')"
  [ "$state" = Completed ]
}
wait_until 180 "savepoint $SAVEPOINT_TRIGGER to complete" savepoint_done
log "savepoint at $(field "sj/$JOB" '{.status.savepoints.last.path}')"
