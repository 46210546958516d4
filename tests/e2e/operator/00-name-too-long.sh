# shellcheck shell=bash
# Names the CRD refuses at once, with a message that says why (a name that could never launch:
# the Service is named after the job, pod hostnames are <name>-<attempt>-<index>).
long_name="windowed-counts-with-a-name-far-too-long-for-pods"
for case in "$long_name|at most 45 characters" "1st-counts|must be a DNS-1035 label"; do
  name=${case%%|*}
  expected=${case#*|}
  rendered=$(sed -e "s|^  name: windowed-counts\$|  name: $name|" "$WINDOWED_EXAMPLE")
  if out=$(printf '%s\n' "$rendered" | kube apply --dry-run=server -f - 2>&1); then
    fail "the API server accepted a StreamJob named $name: $out"
  fi
  case "$out" in
    *"$expected"*) log "rejected $name: $expected" ;;
    *) fail "StreamJob $name was rejected without saying '$expected': $out" ;;
  esac
done
