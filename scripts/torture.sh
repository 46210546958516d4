#!/usr/bin/env bash
# The randomized differential torture test (issue 13) for as long as asked: random jobs, random
# input, random fault schedules, each checked against an independent reference evaluator.
#   TORTURE_MINUTES=30 (default 10)  how long to run new seeds
#   TORTURE_SEED=N     (default random) first seed; seeds N, N+1, … follow
# One line per schedule, then a summary (schedules run, faults injected, records checked); every
# failure prints its seed, job, schedule and the one-line command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
export TORTURE_MINUTES="${TORTURE_MINUTES:-10}"
if [ -z "${TORTURE_SEED:-}" ]; then
  TORTURE_SEED=$(( (RANDOM << 15) | RANDOM ))
fi
export TORTURE_SEED
echo "torture: ${TORTURE_MINUTES} minutes from seed ${TORTURE_SEED}"
# The same (optimized dev) profile as `make test`: reuses its build instead of a release one.
cargo test --workspace --test torture torture_soak -- --ignored --nocapture --test-threads 1
# Then the multi-worker kill test at full length: TORTURE_WORKERS_ROUNDS (default 20) rounds of
# kill -9 of a random worker, relaunched at other worker counts and parallelisms, plus its run
# through every fault point (`make test` runs 6 rounds).
SLUICE_WORKERS_KILL_ROUNDS="${TORTURE_WORKERS_ROUNDS:-20}" \
  cargo test -p sluice-runtime --test workers_kill -- --nocapture --test-threads 1
