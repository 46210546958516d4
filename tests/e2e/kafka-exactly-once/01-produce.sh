# shellcheck shell=bash
# shellcheck disable=SC2034 # PRODUCER_PID is read by later steps
# Sequence-numbered input, {"seq":0} … {"seq":RECORDS-1}, produced in the background at about
# 1000 records/s (100 every 0.1 s), so the next steps act while the stream flows.
log "producing $RECORDS records to $INPUT_TOPIC in the background"
(
  i=0
  while [ "$i" -lt "$RECORDS" ]; do
    j=$((i + 100))
    [ "$j" -le "$RECORDS" ] || j=$RECORDS
    seq "$i" $((j - 1)) | awk '{ printf "{\"seq\":%d}\n", $1 }'
    i=$j
    sleep 0.1
  done
) | kube exec -i kafka-0 -- env KAFKA_HEAP_OPTS=-Xmx192m /opt/kafka/bin/kafka-console-producer.sh \
  --bootstrap-server localhost:9092 --topic "$INPUT_TOPIC" --producer-property acks=all >/dev/null &
PRODUCER_PID=$!
