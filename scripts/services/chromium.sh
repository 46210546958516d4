#!/usr/bin/env bash
# The headless browser of the job page test (runtime/tests/job_page.rs): Debian's chromium.
#   start: install chromium with apt-get if no `chromium` (or `chromium-browser`) is on PATH, then
#          write $SLUICE_TOOLS/run/chromium.env exporting SLUICE_CHROMIUM (the binary's path).
#          The test starts its own browser; nothing runs here.
#   stop:  remove the env file (no process to stop).
#   install: only install chromium if it is missing (test.sh runs it in the background while the
#          workspace builds).
# Without a browser the test fails naming the missing binary; it never passes silently.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SLUICE_TOOLS:-$root/.tools}
run_dir="$tools/run"
env_file="$run_dir/chromium.env"

log() { echo "chromium.sh: $*" >&2; }

find_browser() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

install() {
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no chromium on PATH and no apt-get to install it: install chromium, or set SLUICE_CHROMIUM"
    exit 1
  fi
  log "installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -qq chromium >/dev/null \
    || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq chromium >/dev/null; }
}

start() {
  mkdir -p "$run_dir"
  local bin=${SLUICE_CHROMIUM:-}
  if [ -z "$bin" ]; then
    bin=$(find_browser)
  fi
  if [ -z "$bin" ]; then
    install
    bin=$(find_browser)
  fi
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    log "chromium is still missing after the install"
    exit 1
  fi
  echo "export SLUICE_CHROMIUM=$bin" >"$env_file"
  log "$("$bin" --version 2>/dev/null || echo "$bin") ; variables in $env_file"
}

stop() {
  rm -f "$env_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) [ -n "${SLUICE_CHROMIUM:-}$(find_browser)" ] || install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
