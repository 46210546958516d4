# shellcheck shell=bash
# The savepoint completes and status names it.
# RE-CHECK against the savepoint issue (7): the status fields of the last trigger are assumed to
# be .status.savepoints.last.{value,state,path}.
savepoint_done() {
  [ "$(field "sj/$JOB" '{.status.savepoints.last.value}')" = "$SAVEPOINT_TRIGGER" ] || return 1
  local state
  state=$(field "sj/$JOB" '{.status.savepoints.last.state}')
  [ "$state" != Failed ] || fail "savepoint failed: $(field "sj/$JOB" '{.status.savepoints.last.error}')"
  [ "$state" = Completed ]
}
wait_until 180 "savepoint $SAVEPOINT_TRIGGER to complete" savepoint_done
log "savepoint at $(field "sj/$JOB" '{.status.savepoints.last.path}')"
