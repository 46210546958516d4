# shellcheck shell=bash
# The recreated job stopped with a savepoint of its own (named after its own uid), never the
# first object's: no state rewind.
wait_until 180 "the recreated $WJOB to be Suspended" job_phase_is "$WJOB" Suspended
second_uid=$(field "sj/$WJOB" '{.metadata.uid}')
second_savepoint=$(field "sj/$WJOB" '{.status.resumeFrom}')
[ "$second_uid" != "$FIRST_UID" ] || fail "$WJOB was not recreated (same uid $second_uid)"
[ -n "$second_savepoint" ] || fail "the recreated $WJOB suspended without a savepoint"
[ "$second_savepoint" != "$FIRST_SAVEPOINT" ] || fail "the recreated $WJOB took the first object's savepoint $FIRST_SAVEPOINT"
object_id=$(printf '%s' "$second_uid" | tr -d '-' | cut -c1-8)
case "$second_savepoint" in
  *"/stop-$WJOB-"*"-$object_id") log "recreated $WJOB stopped with its own savepoint $second_savepoint" ;;
  *) fail "savepoint $second_savepoint is not named after the recreated object ($object_id)" ;;
esac
