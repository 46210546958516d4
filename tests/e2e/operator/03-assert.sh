# shellcheck shell=bash
# The job went only after its final savepoint (a SavepointCompleted Event of this object).
sj_gone() { ! kube get sj "$WJOB" >/dev/null 2>&1; }
wait_until 240 "$WJOB to be deleted" sj_gone
final=$(kube get events --field-selector "involvedObject.uid=$DELETED_UID,reason=SavepointCompleted" \
  -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep "stopped with a savepoint" || true)
[ -n "$final" ] || fail "$WJOB was deleted (--cascade=foreground) without a final savepoint"
log "final savepoint before deletion: $final"
kube delete -f "$WINDOWED_EXAMPLE" --ignore-not-found --wait=true --timeout=180s
