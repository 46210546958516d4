#!/usr/bin/env bash
# S3-compatible test servers for the tests: moto's S3 server (PyPI `moto[server]`, pinned below).
#   start: install moto into a cached venv if needed, then start two servers on 127.0.0.1 on free
#          ports, each with the test bucket, and write $SLUICE_TOOLS/run/s3.env:
#          - the main server (SLUICE_TEST_S3_ENDPOINT, SLUICE_TEST_S3_PID) accepts any key pair;
#          - the auth server (SLUICE_TEST_S3_AUTH_ENDPOINT) checks SigV4 signatures against an IAM
#            user whose key pair is exported as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, so a
#            wrong secret is refused with SignatureDoesNotMatch.
#          Why two: with authentication on, moto 5.2.1 recomputes signatures over the *decoded*
#          query string, so every ListObjectsV2 with a `/` in its prefix is refused
#          (SignatureDoesNotMatch) even with the right key. The auth server is for credential tests only.
#   stop:  end both servers by their recorded PIDs.
#   install: only install moto (test.sh runs it in the background while the workspace builds).
# moto keeps everything in memory: a restart loses all objects. Outage tests SIGSTOP/SIGCONT the
# main server's PID instead of restarting it.
set -euo pipefail

MOTO_SPEC="moto[server]==5.2.1"
BUCKET="sluice-test"
REGION="us-east-1"

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SLUICE_TOOLS:-$root/.tools}
run_dir="$tools/run"
env_file="$run_dir/s3.env"
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

# moto_server, with its object writes made one at a time. moto checks a conditional write
# (`If-None-Match: *`) and then stores the object, unlocked, on a threaded server: two racing
# creates of one key could both succeed (`s3_store::racing_writers_of_one_manifest_key_never_both_win`
# failed once in a loaded `make test`). S3 itself makes the check and the write one step; so must
# the server the tests stand it in for.
MOTO_LAUNCHER='
import sys, threading
from moto.s3.responses import S3Response
from moto.server import main
lock = threading.Lock()
def one_at_a_time(method):
    def locked(self, *args, **kwargs):
        with lock:
            return method(self, *args, **kwargs)
    return locked
S3Response.put_object = one_at_a_time(S3Response.put_object)
S3Response._key_response_post = one_at_a_time(S3Response._key_response_post)
main(sys.argv[1:])
'

# launch NAME: starts a moto server, records its PID in $run_dir/NAME.pid, waits until it answers.
# Prints its endpoint.
launch() {
  local name=$1 port endpoint pid
  port=$(free_port)
  endpoint="http://127.0.0.1:$port"
  "$venv/bin/python" -c "$MOTO_LAUNCHER" -H 127.0.0.1 -p "$port" >"$run_dir/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$run_dir/$name.pid"
  for _ in $(seq 1 150); do
    if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/data.json', timeout=1)" "$endpoint" 2>/dev/null; then
      echo "$endpoint"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto_server ($name) exited; log follows"
      cat "$run_dir/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
  log "moto_server ($name) did not answer on $endpoint"
  return 1
}

# provision ENDPOINT AUTH: creates the bucket; with AUTH=1 also an IAM user with full rights and
# its key pair, then turns signature checking on. Prints `ACCESS_KEY SECRET_KEY` (AUTH=1).
provision() {
  AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap \
    "$venv/bin/python" - "$1" "$BUCKET" "$REGION" "$2" <<'PY'
import json, sys, urllib.request
import boto3
endpoint, bucket, region, auth = sys.argv[1:5]
boto3.client("s3", endpoint_url=endpoint, region_name=region).create_bucket(Bucket=bucket)
if auth == "1":
    iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
    iam.create_user(UserName="sluice")
    iam.put_user_policy(UserName="sluice", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="sluice")["AccessKey"]
    # From now on every request must be signed with a known key.
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()
    print(key["AccessKeyId"], key["SecretAccessKey"])
PY
}

running() {
  [ -f "$run_dir/$1.pid" ] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null
}

start() {
  mkdir -p "$run_dir"
  if running s3 && [ -f "$env_file" ]; then
    log "already running (pid $(cat "$run_dir/s3.pid"))"
    return
  fi
  install
  # Any failure from here on must not leave a half-set-up server behind.
  trap 'log "start failed; stopping"; stop' ERR
  local endpoint auth_endpoint keys
  endpoint=$(launch s3)
  provision "$endpoint" 0
  auth_endpoint=$(launch s3-auth)
  keys=$(provision "$auth_endpoint" 1)
  umask 077
  cat >"$env_file" <<ENV
export SLUICE_TEST_S3_ENDPOINT=$endpoint
export SLUICE_TEST_S3_BUCKET=$BUCKET
export SLUICE_TEST_S3_PID=$(cat "$run_dir/s3.pid")
export SLUICE_TEST_S3_AUTH_ENDPOINT=$auth_endpoint
export AWS_ACCESS_KEY_ID=${keys% *}
export AWS_SECRET_ACCESS_KEY=${keys#* }
export AWS_REGION=$REGION
ENV
  trap - ERR
  log "moto S3 servers on $endpoint (pid $(cat "$run_dir/s3.pid")) and $auth_endpoint (auth), bucket $BUCKET; variables in $env_file"
}

# halt NAME: ends the server whose PID is in $run_dir/NAME.pid.
halt() {
  local pid_file="$run_dir/$1.pid" pid
  [ -f "$pid_file" ] || return 0
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
  rm -f "$pid_file"
  log "stopped $1 (pid $pid)"
}

stop() {
  halt s3
  halt s3-auth
  rm -f "$env_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
