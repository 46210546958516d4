#!/usr/bin/env bash
# Kafka benchmark (`make bench-kafka`): on the test broker (scripts/services/kafka.sh, tansu
# in memory on 127.0.0.1), prints
#   RAW      the broker's produce and read_committed consume rates (librdkafka, no Sluice);
#   KAFKA    Kafka → Kafka pass-through with exactly-once vs at-least-once, and a keyed
#            windowed count with exactly-once, 1 s checkpoints, records/s over the whole run;
#   LATENCY  end-to-end delay to a read_committed consumer at 10k records/s, per checkpoint
#            interval (exactly-once output becomes visible when the checkpoint completes).
# The input has 1000 keys and one millisecond of event time per record: the keyed count's
# 100 s windows emit 1000 results per 100k records.
# BENCH_KAFKA_RECORDS (default 1000000) sets the run length.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${BENCH_KAFKA_RECORDS:-1000000}
tools=${SLUICE_TOOLS:-$(pwd)/.tools}

started_broker=0
if [ ! -s "$tools/run/kafka.pid" ] || ! kill -0 "$(cat "$tools/run/kafka.pid")" 2>/dev/null; then
  started_broker=1
fi
bash scripts/services/kafka.sh start
# shellcheck source=/dev/null
source "$tools/run/kafka.env"
if [ "$started_broker" = 1 ]; then
  trap 'bash scripts/services/kafka.sh stop' EXIT
fi
brokers=$SLUICE_TEST_KAFKA_BROKERS

cargo build --release -q -p sluice-runtime --no-default-features --features kafka
bin=target/release/sluice-runtime
work=$(mktemp -d)
run=b$(date +%s)

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

# RAW: produce, then read back read_committed.
t0=$(date +%s.%N)
RUST_LOG=off "$bin" verify produce-kafka --bootstrap "$brokers" --topic "$run-in" --count "$records" --partitions 3 >/dev/null
produce_s=$(seconds_since "$t0")
t0=$(date +%s.%N)
RUST_LOG=off "$bin" verify kafka --bootstrap "$brokers" --topic "$run-in" --count "$records" >/dev/null
consume_s=$(seconds_since "$t0")
echo "RAW produce=$(rate "$records" "$produce_s") rec/s consume_read_committed=$(rate "$records" "$consume_s") rec/s records=$records"

job() { # name semantic shape interval input output [extra source settings]
  local name=$1 semantic=$2 shape=$3 interval=$4 input=$5 output=$6 extra=${7:-}
  local middle edges
  if [ "$shape" = keyed ]; then
    middle="    - {id: count, window: {size: 100s, function: count}}"
    edges="    - {from: in, to: count, partition: hash}
    - {from: count, to: out}"
  else
    middle=""
    edges="    - {from: in, to: out}"
  fi
  cat >"$work/$name.yaml" <<YAML
name: $name
checkpointing:
  interval: $interval
  timeout: 1m
  storage: {uri: "file://$work/$name-checkpoints"}
pipeline:
  nodes:
    - {id: in, kafkaSource: {bootstrapServers: "$brokers", topic: $input$extra}}
$middle
    - {id: out, kafkaSink: {bootstrapServers: "$brokers", topic: $output, semantic: $semantic}}
  edges:
$edges
YAML
  echo "$work/$name.yaml"
}

for case in "pass exactly-once" "pass at-least-once" "keyed exactly-once"; do
  read -r shape semantic <<<"$case"
  out="$run-$shape-$semantic"
  RUST_LOG=off "$bin" verify produce-kafka --bootstrap "$brokers" --topic "$out" --count 0 --partitions 3 >/dev/null
  file=$(job "$run-$shape-${semantic%%-*}" "$semantic" "$shape" 1s "$run-in" "$out" ", stopAtEnd: true")
  t0=$(date +%s.%N)
  summary=$(RUST_LOG=warn,rdkafka=off "$bin" run "$file" 2>&1 | grep ' finished: ' || true)
  secs=$(seconds_since "$t0")
  echo "KAFKA shape=$shape semantic=$semantic records=$records seconds=$secs rate=$(rate "$records" "$secs") rec/s ($summary)"
done

for interval in 100ms 1s; do
  in="$run-live-$interval-in" out="$run-live-$interval-out"
  RUST_LOG=off "$bin" verify produce-kafka --bootstrap "$brokers" --topic "$in" --count 0 --partitions 3 >/dev/null
  RUST_LOG=off "$bin" verify produce-kafka --bootstrap "$brokers" --topic "$out" --count 0 --partitions 3 >/dev/null
  file=$(job "$run-live-${interval}" exactly-once pass "$interval" "$in" "$out" ", startFrom: latest")
  RUST_LOG=warn,rdkafka=off "$bin" run "$file" >/dev/null 2>&1 &
  pid=$!
  sleep 3
  result=$(RUST_LOG=off "$bin" verify kafka-latency --bootstrap "$brokers" --input "$in" --output "$out" --rate 10000 --seconds 10)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$result checkpointInterval=$interval"
done
rm -rf "$work"
