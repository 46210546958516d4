# shellcheck shell=bash
# A savepoint by annotation, exactly as a user would trigger it.
SAVEPOINT_TRIGGER=$(date +%s)
log "annotating sj/$JOB sluice.dev/savepoint=$SAVEPOINT_TRIGGER"
kube annotate sj "$JOB" "sluice.dev/savepoint=$SAVEPOINT_TRIGGER" --overwrite
