# shellcheck shell=bash
# The operator launched the job and its runtime pod is ready.
wait_until 300 "StreamJob $JOB to be Running" phase_is Running
[ "$(job_pods)" -ge 1 ] || fail "phase Running but no pod of $JOB"
kube wait --for=condition=Ready pod -l "sluice.dev/job=$JOB" --timeout=60s
