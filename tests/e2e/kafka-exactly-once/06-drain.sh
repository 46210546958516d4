# shellcheck shell=bash
# All input is in Kafka once the producer exits.
log "waiting for the producer to finish"
wait "$PRODUCER_PID" || fail "producing the input failed"
PRODUCER_PID=""
