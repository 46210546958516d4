#!/usr/bin/env bash
# `make bench-nexmark`: each Nexmark query of examples/nexmark/ at parallelism 2, with checkpoints
# off and every 1 s (exactly-once, to a local directory), printing events/s (steady state, at the
# source: between 10 % and 80 % of the events), events per CPU-second of the whole process,
# checkpoint duration p50/p99 and peak RSS.
# NEXMARK_EVENTS sets the events per run (default 20M; Flink's suite runs 100M);
# NEXMARK_QUERIES the queries (default: all of examples/nexmark/).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${NEXMARK_EVENTS:-20000000}
out=.bench/nexmark
mkdir -p "$out"
cargo build --release -q -p sluice-runtime --no-default-features
bin=target/release/sluice-runtime

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }

printf '%-6s %-4s %-12s %-10s %-12s %-16s %-10s\n' query p checkpoints "events/s" "events/CPU-s" "ckpt p50/p99 ms" "peak RSS"
for q in ${NEXMARK_QUERIES:-q0 q1 q2 q3 q4 q5 q7 q8 q11 q15 q17 q18 q19}; do
  # The example as written, with the event count of this run.
  sed "s/events: [0-9]*/events: $n/" "examples/nexmark/$q.yaml" >"$out/$q.yaml"
  for ck in off 1s; do
    args=(bench --job "$out/$q.yaml" --parallelism 2 --dir "$out/checkpoints")
    [ "$ck" = off ] || args+=(--checkpoint-interval "$ck")
    line=$("$bin" "${args[@]}" 2>/dev/null | grep '^RESULT')
    echo "$line" >>"$out/results.txt"
    printf '%-6s %-4s %-12s %-10s %-12s %-16s %-10s\n' "$q" 2 "$ck" \
      "$(numfmt --to=si "$(field steadyRecPerSec "$line")")" "$(numfmt --to=si "$(field recPerCpuSec "$line")")" \
      "$(field ckptP50Ms "$line")/$(field ckptP99Ms "$line")" "$(numfmt --to=iec "$(field peakRssBytes "$line")")"
  done
done
