# shellcheck shell=bash
# shellcheck disable=SC2034 # KILLED_AT is read by later steps
# Delete the running runtime pod mid-stream; the operator must relaunch from the latest checkpoint.
KILLED_ATTEMPT=$(field "sj/$JOB" '{.status.attempt}')
[ -n "$KILLED_ATTEMPT" ] || fail "status.attempt of $JOB is empty"
victim=$(kube get pods -l "sluice.dev/job=$JOB" -o name | head -n 1)
[ -n "$victim" ] || fail "no runtime pod of $JOB to delete"
log "deleting $victim (attempt $KILLED_ATTEMPT) mid-stream"
KILLED_AT=$(date +%s)
kube delete "$victim" --wait=false
