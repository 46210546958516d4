#!/usr/bin/env bash
# S3-compatible test server for the tests: moto's S3 server (PyPI `moto[server]`, pinned below).
#   start: install moto into a cached venv if needed, start it on 127.0.0.1 on a free port, create
#          an IAM user with full rights, its key pair and the test bucket, then turn on request
#          authentication (so a wrong secret key is refused), and write $SLUICE_TOOLS/run/s3.env.
#   stop:  end the server by its recorded PID.
# moto keeps everything in memory: a restart loses all objects. Outage tests SIGSTOP/SIGCONT the
# PID in SLUICE_TEST_S3_PID instead of restarting it.
set -euo pipefail

MOTO_SPEC="moto[server]==5.2.1"
BUCKET="sluice-test"
REGION="us-east-1"

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SLUICE_TOOLS:-$root/.tools}
run_dir="$tools/run"
env_file="$run_dir/s3.env"
pid_file="$run_dir/s3.pid"
log_file="$run_dir/s3.log"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sluice
key=$(printf '%s\n' "$MOTO_SPEC" "$(python3 --version 2>&1)" | sha256sum | cut -c1-12)
venv="$cache/moto-$key"

log() { echo "s3.sh: $*" >&2; }

install() {
  # The marker is written last, so an interrupted install is redone rather than trusted.
  if [ -f "$venv/.installed" ]; then
    return
  fi
  log "installing $MOTO_SPEC into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC"; then
    rm -rf "$venv"
    log "pip install of $MOTO_SPEC failed"
    exit 1
  fi
  touch "$venv/.installed"
}

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Creates the IAM user, its keys and the bucket while authentication is still off, then turns it
# on. Prints `ACCESS_KEY SECRET_KEY`.
provision() {
  local endpoint=$1
  AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap \
    "$venv/bin/python" - "$endpoint" "$BUCKET" "$REGION" <<'PY'
import json, sys, urllib.request
import boto3
endpoint, bucket, region = sys.argv[1:4]
iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
iam.create_user(UserName="sluice")
iam.put_user_policy(UserName="sluice", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="sluice")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
s3.create_bucket(Bucket=bucket)
# From now on every request must be signed with a known key.
req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                             headers={"Content-Type": "text/plain"})
urllib.request.urlopen(req).read()
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
}

start() {
  mkdir -p "$run_dir"
  if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    log "already running (pid $(cat "$pid_file"))"
    return
  fi
  install
  local port endpoint pid keys
  port=$(free_port)
  endpoint="http://127.0.0.1:$port"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 &
  pid=$!
  echo "$pid" >"$pid_file"
  # Any failure from here on must not leave a half-set-up server behind.
  trap 'log "start failed; stopping pid $pid"; stop' ERR
  for _ in $(seq 1 150); do
    if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/data.json', timeout=1)" "$endpoint" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto_server exited; log follows"
      cat "$log_file" >&2
      exit 1
    fi
    sleep 0.2
  done
  keys=$(provision "$endpoint")
  umask 077
  cat >"$env_file" <<ENV
export SLUICE_TEST_S3_ENDPOINT=$endpoint
export SLUICE_TEST_S3_BUCKET=$BUCKET
export SLUICE_TEST_S3_PID=$pid
export AWS_ACCESS_KEY_ID=${keys% *}
export AWS_SECRET_ACCESS_KEY=${keys#* }
export AWS_REGION=$REGION
ENV
  trap - ERR
  log "moto S3 server on $endpoint (pid $pid), bucket $BUCKET; variables in $env_file"
}

stop() {
  if [ ! -f "$pid_file" ]; then
    log "not running"
    return
  fi
  local pid
  pid=$(cat "$pid_file")
  # A stopped process (outage test) must be continued before it can act on SIGTERM.
  kill -CONT "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file" "$env_file"
  log "stopped (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
