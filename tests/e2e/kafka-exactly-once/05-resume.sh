# shellcheck shell=bash
log "resuming $JOB"
kube patch sj "$JOB" --type merge -p '{"spec":{"state":"running"}}'
