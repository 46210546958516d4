# shellcheck shell=bash
log "suspending $JOB"
kube patch sj "$JOB" --type merge -p '{"spec":{"state":"suspended"}}'
