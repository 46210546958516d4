# shellcheck shell=bash
# It runs, checkpoints, and its file sink commits files to the PVC mounted at /data.
WJOB=windowed-counts
wait_until 300 "StreamJob $WJOB to be Running" job_phase_is "$WJOB" Running
has_wcheckpoint() { [ -n "$(field "sj/$WJOB" '{.status.checkpoints.latest.id}')" ]; }
wait_until 120 "a completed checkpoint of $WJOB" has_wcheckpoint
committed_files() {
  local pod
  pod=$(kube get pods -l "sluice.dev/job=$WJOB" -o name | head -n 1)
  [ -n "$pod" ] && [ -n "$(kube exec "${pod#pod/}" -c runtime -- ls /data/out 2>/dev/null)" ]
}
wait_until 180 "committed output files of $WJOB in /data/out" committed_files
log "$WJOB writes to its PVC; checkpoint $(field "sj/$WJOB" '{.status.checkpoints.latest.id}') completed"
