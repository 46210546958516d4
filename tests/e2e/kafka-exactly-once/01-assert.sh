# shellcheck shell=bash
# Checkpoints complete while input flows.
has_checkpoint() { [ -n "$(field "sj/$JOB" '{.status.checkpoints.latest.id}')" ]; }
wait_until 120 "a completed checkpoint of $JOB" has_checkpoint
log "checkpoint $(field "sj/$JOB" '{.status.checkpoints.latest.id}') completed"
