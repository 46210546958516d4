# shellcheck shell=bash
# Topics of this run, and the Kafka → Kafka example with this run's job name, topics and
# checkpoint prefix (so a kept cluster can run the test again from a clean slate).
for topic in "$INPUT_TOPIC" "$OUTPUT_TOPIC"; do
  kafka_tool kafka-topics.sh --create --topic "$topic" --partitions 4 --replication-factor 1
done
rendered=$(sed \
  -e "s|^  name: kafka-to-kafka\$|  name: $JOB|" \
  -e "s|topic: input\$|topic: $INPUT_TOPIC|" \
  -e "s|topic: output\$|topic: $OUTPUT_TOPIC|" \
  -e "s|uri: s3://sluice-checkpoints/kafka-to-kafka\$|uri: s3://sluice-checkpoints/$JOB|" \
  "$EXAMPLE")
for expected in "name: $JOB" "topic: $INPUT_TOPIC" "topic: $OUTPUT_TOPIC" "sluice-checkpoints/$JOB"; do
  [ "$(printf '%s\n' "$rendered" | grep -c -- "$expected")" = 1 ] ||
    fail "$EXAMPLE no longer has the line this test rewrites into '$expected'"
done
printf '%s\n' "$rendered" | kube apply -f -
