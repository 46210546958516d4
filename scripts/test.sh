#!/usr/bin/env bash
# The whole test suite: static checks, the real services the tests need (started on 127.0.0.1
# and stopped on exit), then every test of the workspace. `make test` and `.ci/run` call this.
#
# A first run on a fresh machine compiles two large things: the workspace and the test broker
# (tansu, its own target). They build side by side, and clippy lints the workspace while it
# compiles for the tests (clippy-driver as the workspace's compiler) instead of in a second,
# separate pass over every dependency. What only downloads and installs (the manifest validator,
# moto, chromium, nftables) happens in the background meanwhile, one step after another (apt takes one lock).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export SLUICE_TOOLS="$root/.tools"
mkdir -p "$SLUICE_TOOLS/run"

started=()
broker_build=""
prepare=""
# Ends a process and everything it started (the background broker build runs cargo).
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  if [ -n "$broker_build" ] && kill -0 "$broker_build" 2>/dev/null; then kill_tree "$broker_build"; fi
  if [ -n "$prepare" ] && kill -0 "$prepare" 2>/dev/null; then kill_tree "$prepare"; fi
  for svc in "${started[@]}"; do bash "scripts/services/$svc.sh" stop || true; done
}
trap cleanup EXIT

# rdkafka (runtime and tests) compiles librdkafka: install its C toolchain before the first build.
bash scripts/services/kafka.sh build-tools
# The test broker builds once per machine (~13 min on 2 cores alone): start it now, beside the rest.
broker_log="$SLUICE_TOOLS/run/broker-build.log"
bash scripts/services/kafka.sh build >"$broker_log" 2>&1 &
broker_build=$!

# Generated CRD in sync, manifests valid against the Kubernetes schemas, kustomizations build,
# shell scripts pass shellcheck (installs its validator into a cached venv on first use); then the
# installs of the services started after the build. Its output is shown when it is waited for.
prepare_log="$SLUICE_TOOLS/run/prepare.log"
(
  set -e
  bash scripts/validate-manifests.sh
  bash scripts/services/s3.sh install
  bash scripts/services/chromium.sh install
  bash scripts/services/netfault.sh install
) >"$prepare_log" 2>&1 &
prepare=$!

echo "== static checks"
cargo fmt --all -- --check

echo "== clippy and the test build"
# `cargo clippy --workspace --all-targets -- -D warnings`, folded into the build the tests need:
# the workspace's crates compile through clippy-driver with the same arguments cargo-clippy
# would give it (CLIPPY_ARGS), dependencies through plain rustc. Where no clippy-driver is
# installed, the separate pass runs instead.
if driver=$(rustup which clippy-driver 2>/dev/null) && [ -x "$driver" ]; then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
else
  cargo clippy --workspace --all-targets -- -D warnings
fi
cargo test --workspace --all-targets --no-run

echo "== manifests and service installs"
prepared=0
wait "$prepare" || prepared=$?
prepare=""
cat "$prepare_log"
if [ "$prepared" -ne 0 ]; then
  echo "the manifest checks or a service install failed (output above)" >&2
  exit 1
fi

echo "== test broker"
if ! wait "$broker_build"; then
  broker_build=""
  echo "the test broker did not build; its log follows" >&2
  cat "$broker_log" >&2
  exit 1
fi
broker_build=""

# Each scripts/services/NAME.sh takes `start` (install if needed, start on loopback, write
# $SLUICE_TOOLS/run/NAME.env with the variables the tests read) and `stop` (by recorded PID).
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
if cargo nextest --version >/dev/null 2>&1; then
  # Each test in its own process, one per core at a time across all binaries, the slowest
  # first, the S3 tests one at a time (.config/nextest.toml); measured on 2 cores: 6.4 min
  # against 9.5 for `cargo test`, which runs the binaries one after another. Every failure is
  # reported.
  cargo nextest run --workspace --all-targets
else
  # --no-fail-fast: one failing test binary must not hide the others' results. The S3 tests
  # that freeze the server are in one binary and take turns there.
  cargo test --no-fail-fast --workspace --all-targets -- --test-threads 2
fi
