#!/usr/bin/env bash
# `make bench-workers`: the shared workload's shape (generator → keyed running sum over a hash
# exchange → discard) at parallelism 2 with 1 s checkpoints, run in one process and over
# `--workers 2` on loopback, in the same session: throughput ratio and checkpoint duration
# p50/p99 (from worker 0's `triggering checkpoint` / `checkpoint complete` log lines).
# Then the exchange alone against a raw loopback TCP copy (engine/net/bench_tests.rs).
# WORKERS_BENCH_RECORDS sets the records per run (default 30M); BENCH_REPEAT the runs (3, median).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${WORKERS_BENCH_RECORDS:-30000000}
out=.bench/workers
rm -rf "$out"
mkdir -p "$out"
cargo build --release -q -p sluice-runtime --no-default-features
bin=target/release/sluice-runtime

cat >"$out/job.yaml" <<YAML
name: workers-bench
checkpointing:
  interval: 1s
  retained: 2
  storage:
    uri: file://$PWD/$out/checkpoints
pipeline:
  maxParallelism: 128
  parallelism: 2
  nodes:
    - id: gen
      generator: {count: $n, keys: 100000, eventTimeStepMs: 1}
    - id: sum
      aggregate: {function: sum}
    - id: out
      discard: {}
  edges:
    - {from: gen, to: sum, partition: hash}
    - {from: sum, to: out}
YAML

# percentile P (0–100) of the numbers on standard input.
percentile() { sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR == 0) {print "-"; exit} i = int((NR - 1) * p / 100) + 1; print a[i]}'; }

# Checkpoint durations (ms) from a log with RFC 3339 timestamps.
durations() {
  python3 - "$1" <<'PY'
import re, sys
from datetime import datetime
start = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(\S+Z)\s.*?(triggering checkpoint|checkpoint complete).*?checkpoint=(\d+)", line)
    if not m:
        continue
    t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
    if m.group(2) == "triggering checkpoint":
        start[m.group(3)] = t
    elif m.group(3) in start:
        print(round((t - start[m.group(3)]) * 1000))
PY
}

printf '%-12s %-12s %-10s %-18s\n' mode "rec/s" checkpoints "ckpt p50/p99 ms"
declare -A rate
for mode in single workers2; do
  runs=()
  for r in $(seq "${BENCH_REPEAT:-3}"); do
    rm -rf "$out/checkpoints"
    args=(run "$out/job.yaml" --no-restore --no-control)
    [ "$mode" = single ] || args+=(--workers 2 --max-restarts 0)
    log="$out/$mode-$r.log"
    line=$(RUST_LOG=warn,sluice_runtime::checkpoint::driver=debug "$bin" "${args[@]}" 2>"$log" | grep '^job ')
    secs=$(sed -n 's/.* source records in \([0-9.]*\)s.*/\1/p' <<<"$line")
    ckpts=$(sed -n 's/.* \([0-9]*\) checkpoints completed.*/\1/p' <<<"$line")
    durations "$log" >"$out/$mode-$r.durations"
    runs+=("$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n/s}') $ckpts $r")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | awk -v m="${#runs[@]}" 'NR == int((m + 1) / 2)')
  read -r rps ckpts r <<<"$median"
  rate[$mode]=$rps
  p50=$(percentile 50 <"$out/$mode-$r.durations")
  p99=$(percentile 99 <"$out/$mode-$r.durations")
  printf '%-12s %-12s %-10s %-18s\n' "$mode" "$(numfmt --to=si "$rps")" "$ckpts" "$p50/$p99"
done
echo "workers 2 / single process: $(awk -v a="${rate[workers2]}" -v b="${rate[single]}" 'BEGIN{printf "%.2f", a/b}')"

echo "== the exchange between two workers vs a raw loopback TCP copy"
cargo test --release -q -p sluice-runtime --no-default-features --lib engine::net::bench -- --ignored --nocapture 2>/dev/null | grep '^RESULT'
