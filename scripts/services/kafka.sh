#!/usr/bin/env bash
# The Kafka-protocol test broker (tests/broker: tansu with the EndTxn route; see its
# README) and what the Kafka tests need to build (a C toolchain for rdkafka's bundled
# librdkafka). Usage: kafka.sh start|stop|build|build-tools
#   start: install build tools if missing, build the broker once per machine into
#          ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/broker-<hash of its sources>/, start it on
#          a free 127.0.0.1 port, wait until it answers, write $SLUICE_TOOLS/run/kafka.env
#          (SLUICE_TEST_KAFKA_BROKERS, _PID, and _BROKER_BIN: tests that start brokers of
#          their own, e.g. behind a TLS proxy, use the same binary).
#   stop:  end the broker by its recorded PID.
#   build: only build the broker if this machine has none (test.sh runs it in the background
#          beside the workspace build, so a fresh machine does not wait for both in turn).
#   build-tools: only install what compiling rdkafka needs (test.sh runs it before building).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
tools=${SLUICE_TOOLS:-$root/.tools}
run_dir="$tools/run"
env_file="$run_dir/kafka.env"
pid_file="$run_dir/kafka.pid"
addr_file="$run_dir/kafka.addr"
log_file="$run_dir/kafka.log"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice"

log() { echo "kafka.sh: $*" >&2; }

# rdkafka (bundled librdkafka 2.12, newer than Debian's 2.0 package) compiles C code:
# it needs a C compiler, make, pkg-config, zlib headers and, for TLS and SASL SCRAM, the
# OpenSSL headers (zstd is compiled from source by zstd-sys).
ensure_build_tools() {
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v make >/dev/null || missing+=(make)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  [ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
  [ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
}

broker_hash() {
  (
    cd tests/broker
    find Cargo.toml Cargo.lock src -type f -print0 | sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

# Prints the path of the broker binary, building it first when this machine has none.
broker_binary() {
  local hash dir bin
  hash=$(broker_hash)
  dir="$cache/broker-$hash"
  bin="$dir/sluice-test-broker"
  if [ ! -x "$bin" ]; then
    log "building the test broker (tansu; ~13 min on 2 cores, once per machine)"
    # Build from a fresh copy at one fixed path: cargo judges freshness by the mtimes of the
    # paths it last built from, so with the shared target a build from another checkout (other
    # sources, older files) would pass for up to date and hand back a stale binary.
    rm -rf "$cache/broker-src"
    mkdir -p "$cache/broker-src"
    cp -r tests/broker/Cargo.toml tests/broker/Cargo.lock tests/broker/src "$cache/broker-src/"
    CARGO_TARGET_DIR="$cache/broker-target" cargo build --release --locked \
      --manifest-path "$cache/broker-src/Cargo.toml" >&2
    mkdir -p "$dir"
    cp "$cache/broker-target/release/sluice-test-broker" "$dir/.sluice-test-broker.tmp"
    mv "$dir/.sluice-test-broker.tmp" "$bin"
    # Binaries of older broker sources are never used again.
    find "$cache" -maxdepth 1 -type d -name 'broker-*' ! -name "broker-$hash" \
      ! -name broker-target ! -name broker-src -exec rm -rf {} +
  fi
  echo "$bin"
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  mkdir -p "$run_dir"
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    return 0
  fi
  ensure_build_tools
  local bin
  bin=$(broker_binary)
  rm -f "$addr_file" "$env_file"
  nohup "$bin" --addr-file "$addr_file" >"$log_file" 2>&1 &
  local pid=$!
  echo "$pid" >"$pid_file"
  local addr=""
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during start-up; log follows"
      cat "$log_file" >&2
      return 1
    fi
    if [ -s "$addr_file" ]; then
      addr=$(cat "$addr_file")
      # Answers = accepts a TCP connection on its port.
      if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
        break
      fi
      addr=""
    fi
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    log "broker did not answer within 30 s; log: $log_file"
    kill "$pid" 2>/dev/null || true
    return 1
  fi
  cat >"$env_file" <<ENV
export SLUICE_TEST_KAFKA_BROKERS=$addr
export SLUICE_TEST_KAFKA_PID=$pid
export SLUICE_TEST_KAFKA_BROKER_BIN=$bin
ENV
  log "broker ready at $addr (pid $pid)"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "stopped (pid $pid)"
  fi
  rm -f "$pid_file" "$env_file" "$addr_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  build)
    ensure_build_tools
    broker_binary >/dev/null
    ;;
  build-tools) ensure_build_tools ;;
  *)
    echo "usage: $0 start|stop|build|build-tools" >&2
    exit 2
    ;;
esac
