# shellcheck shell=bash
# The windowed-counts example exactly as the README applies it (its PVC included).
log "applying $WINDOWED_EXAMPLE as written"
kube apply -f "$WINDOWED_EXAMPLE"
