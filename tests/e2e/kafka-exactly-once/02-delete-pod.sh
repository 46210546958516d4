# shellcheck shell=bash
# shellcheck disable=SC2034 # KILLED_AT is read by later steps
# Delete a running runtime pod (worker 0, the coordinator) mid-stream; the operator must delete
# the other workers too and relaunch them all from the latest checkpoint.
# The runtime exits on SIGTERM, so the pod is gone well before its grace period
# (terminationGracePeriodSeconds, 15 s as the operator builds it) would have it killed.
KILLED_ATTEMPT=$(field "sj/$JOB" '{.status.attempt}')
[ -n "$KILLED_ATTEMPT" ] || fail "status.attempt of $JOB is empty"
victim=$(kube get pods -l "sluice.dev/job=$JOB" -o name | head -n 1)
[ -n "$victim" ] || fail "no runtime pod of $JOB to delete"
log "deleting $victim (attempt $KILLED_ATTEMPT) mid-stream"
grace=$(kube get "$victim" -o jsonpath='{.spec.terminationGracePeriodSeconds}' 2>/dev/null || true)
KILLED_AT=$(date +%s)
kube delete "$victim" --wait=false
while kube get "$victim" >/dev/null 2>&1; do
  [ $(($(date +%s) - KILLED_AT)) -lt 120 ] || fail "$victim still exists 120 s after its deletion"
  sleep 1
done
TERMINATED_IN=$(($(date +%s) - KILLED_AT))
log "$victim was gone ${TERMINATED_IN}s after its deletion (grace period ${grace:-?}s)"
if [ -n "$grace" ] && [ "$TERMINATED_IN" -ge "$grace" ]; then
  fail "$victim took its whole grace period to stop: the runtime did not exit on SIGTERM"
fi
