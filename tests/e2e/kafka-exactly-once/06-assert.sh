# shellcheck shell=bash
# Every input record appears exactly once in the output, as a read_committed consumer sees it,
# and no transaction of the job is left open: `sluice-runtime verify kafka`, run in a pod with
# the job's own image. It exits 0 only for a perfect result; while records are still missing
# (and none is duplicated) it is retried.
image=$(kube get sj "$JOB" -o jsonpath='{.spec.image}')
deadline=$(($(date +%s) + 300))
attempt=0
while :; do
  attempt=$((attempt + 1))
  if report=$(kube run "verify-$RUN_ID-$attempt" --image="$image" --image-pull-policy=IfNotPresent \
    --restart=Never --rm -i --quiet --command -- sluice-runtime verify kafka \
    --bootstrap kafka.sluice.svc:9092 --topic "$OUTPUT_TOPIC" --count "$RECORDS" 2>&1); then
    log "verifier: $report"
    break
  fi
  log "verifier: $report"
  case "$report" in
    *" 0 duplicated, 0 out of place"*) ;;
    *) fail "the output of $JOB is not exactly-once" ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || fail "the output of $JOB did not become complete within 5 minutes"
  sleep 5
done
