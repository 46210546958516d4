# shellcheck shell=bash
# Every input record appears exactly once in the output, as a read_committed consumer sees it.
# TODO: use `sluice-runtime verify` (the Kafka issue's verifier) once it exists; until then the
# console consumer reads the topic and awk counts the sequence numbers.
# Prints: lines distinct duplicates out-of-range unparsable
count_output() {
  kafka_tool kafka-console-consumer.sh --topic "$OUTPUT_TOPIC" --from-beginning \
    --isolation-level read_committed --timeout-ms 20000 2>/dev/null |
    awk -v n="$RECORDS" '
      match($0, /"seq":[0-9]+/) { c[substr($0, RSTART + 6, RLENGTH - 6) + 0]++; next }
      { bad++ }
      END {
        for (k in c) { distinct++; if (k + 0 < 1 || k + 0 > n + 0) out++; if (c[k] > 1) dup += c[k] - 1 }
        printf "%d %d %d %d %d\n", NR, distinct, dup, out, bad
      }' || true
}
deadline=$(($(date +%s) + 300))
while :; do
  read -r lines distinct dups out bad <<<"$(count_output)"
  log "output: $lines records, $distinct distinct, $dups duplicates, $out out of range, $bad unparsable"
  [ "${dups:-0}" = 0 ] || fail "$dups duplicate records in $OUTPUT_TOPIC"
  if [ "${out:-0}" != 0 ] || [ "${bad:-0}" != 0 ]; then fail "unexpected records in $OUTPUT_TOPIC"; fi
  [ "${distinct:-0}" != "$RECORDS" ] || break
  [ "$(date +%s)" -lt "$deadline" ] || fail "only ${distinct:-0} of $RECORDS records reached $OUTPUT_TOPIC"
  sleep 5
done
[ "$lines" = "$RECORDS" ] || fail "$lines output records for $RECORDS inputs"
