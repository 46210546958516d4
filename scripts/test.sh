#!/usr/bin/env bash
# The whole test suite: static checks, the real services the tests need (started on 127.0.0.1
# and stopped on exit), then every test of the workspace. `make test` and `.ci/run` call this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export SLUICE_TOOLS="$root/.tools"
mkdir -p "$SLUICE_TOOLS/run"

# rdkafka (runtime and tests) compiles librdkafka: install its C toolchain before the first build.
bash scripts/services/kafka.sh build-tools

echo "== static checks"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Generated CRD in sync, manifests valid against the Kubernetes schemas, kustomizations build,
# shell scripts pass shellcheck (installs its validator into a cached venv on first use).
bash scripts/validate-manifests.sh

# Each scripts/services/NAME.sh takes `start` (install if needed, start on loopback, write
# $SLUICE_TOOLS/run/NAME.env with the variables the tests read) and `stop` (by recorded PID).
started=()
stop_services() {
  for svc in "${started[@]}"; do bash "scripts/services/$svc.sh" stop || true; done
}
trap stop_services EXIT
for script in scripts/services/*.sh; do
  [ -e "$script" ] || continue
  svc=$(basename "$script" .sh)
  echo "== starting $svc"
  bash "$script" start
  started+=("$svc")
  # shellcheck disable=SC1090
  source "$SLUICE_TOOLS/run/$svc.env"
done

echo "== tests"
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --no-fail-fast --workspace --all-targets -- --test-threads 2
