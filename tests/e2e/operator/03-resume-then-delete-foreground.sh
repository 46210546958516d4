# shellcheck shell=bash
# shellcheck disable=SC2034 # DELETED_UID is read by 03-assert.sh
# Resume, then delete with --cascade=foreground: the garbage collector deletes dependents first,
# and runtime pods must not be among them, or the final savepoint would never be taken.
kube patch sj "$WJOB" --type merge -p '{"spec":{"state":"running"}}'
wait_until 300 "$WJOB to run again" job_phase_is "$WJOB" Running
DELETED_UID=$(field "sj/$WJOB" '{.metadata.uid}')
log "deleting $WJOB (uid $DELETED_UID) with --cascade=foreground"
kube delete sj "$WJOB" --cascade=foreground --wait=false
