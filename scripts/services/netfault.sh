#!/usr/bin/env bash
# What the network-fault tests need (runtime/tests/workers_netns.rs: worker processes in network
# namespaces the test creates, joined by veth links): `ip` (iproute2) and `nft` (nftables, to
# drop a share of packets: this machine's kernel has no sch_netem, so `tc netem` cannot).
#   start:   install them with apt-get if missing, then write $SLUICE_TOOLS/run/netfault.env
#            exporting SLUICE_NFT (nft's path). Nothing runs; the tests make their own namespaces.
#   stop:    remove the env file.
#   install: only install (test.sh runs it in the background while the workspace builds).
# Where namespaces cannot be created (no CAP_NET_ADMIN) the tests say so and skip.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SLUICE_TOOLS:-$root/.tools}
run_dir="$tools/run"
env_file="$run_dir/netfault.env"

log() { echo "netfault.sh: $*" >&2; }

install() {
  local missing=()
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and no apt-get to install them"
    exit 1
  fi
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

start() {
  mkdir -p "$run_dir"
  install
  local nft
  nft=$(command -v nft 2>/dev/null || echo /usr/sbin/nft)
  echo "export SLUICE_NFT=$nft" >"$env_file"
  log "nft at $nft; variables in $env_file"
}

case "${1:-}" in
  start) start ;;
  stop) rm -f "$env_file" ;;
  install) install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
