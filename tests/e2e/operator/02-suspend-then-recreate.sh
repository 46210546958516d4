# shellcheck shell=bash
# shellcheck disable=SC2034 # FIRST_UID and FIRST_SAVEPOINT are read by 02-assert.sh
# Suspend the job (a stop savepoint named after its run), delete it, and create it again under
# the same name with the same storage, as the README's initialSavepointPath recipe does.
WJOB=windowed-counts
FIRST_UID=$(field "sj/$WJOB" '{.metadata.uid}')
kube patch sj "$WJOB" --type merge -p '{"spec":{"state":"suspended"}}'
wait_until 180 "$WJOB to be Suspended" job_phase_is "$WJOB" Suspended
FIRST_SAVEPOINT=$(field "sj/$WJOB" '{.status.resumeFrom}')
[ -n "$FIRST_SAVEPOINT" ] || fail "$WJOB suspended without a savepoint"
log "first object (uid $FIRST_UID) suspended with $FIRST_SAVEPOINT; deleting and recreating it"
kube delete sj "$WJOB" --wait=true --timeout=180s
kube apply -f "$WINDOWED_EXAMPLE"
wait_until 300 "the recreated $WJOB to be Running" job_phase_is "$WJOB" Running
kube patch sj "$WJOB" --type merge -p '{"spec":{"state":"suspended"}}'
