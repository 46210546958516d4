# shellcheck shell=bash
wait_until 300 "$JOB to run again" phase_is Running
log "resumed from $(field "sj/$JOB" '{.status.restoredFrom}')"
