#!/usr/bin/env bash
# Validates the Kubernetes base (deploy/kubernetes) on paper:
#  1. prometheusrule.yaml is what scripts/gen-k8s-rules.sh makes of alerts/;
#  2. `kubectl kustomize` renders it;
#  3. every rendered built-in resource validates, strictly (unknown fields are
#     errors), against the Kubernetes $K8S_VERSION OpenAPI schema, with
#     kubernetes-validate from PyPI (pinned) in a venv under target/.
# The ServiceMonitor and PrometheusRule are Prometheus Operator CRDs:
# kubernetes-validate ships schemas for built-in kinds only, and no package
# registry this project uses ships the operator's CRD schemas, so they are
# left out of step 3 (and said so); step 1 and tests/it/deploy/kubernetes.rs
# check their content.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.31.0
KV_VERSION=1.37.0
venv=target/k8s-venv

scripts/gen-k8s-rules.sh --check

rendered=$(mktemp)
builtin=$(mktemp)
trap 'rm -f "$rendered" "$builtin"' EXIT
kubectl kustomize deploy/kubernetes >"$rendered"

if [ ! -x "$venv/bin/kubernetes-validate" ] \
  || [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$KV_VERSION" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

# Split off the CRD kinds (PyYAML comes with kubernetes-validate).
"$venv/bin/python" - "$rendered" "$builtin" <<'PY'
import sys, yaml
crds = {"ServiceMonitor", "PrometheusRule"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = []
for d in docs:
    if d["kind"] in crds:
        print(f"check-k8s: {d['kind']}/{d['metadata']['name']}: no schema for "
              f"{d['apiVersion']} (a CRD); content checked by gen-k8s-rules.sh --check "
              "and tests/it/deploy/kubernetes.rs", file=sys.stderr)
    else:
        keep.append(d)
kinds = sorted(d["kind"] for d in keep)
want = ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
if kinds != want:
    sys.exit(f"check-k8s: rendered built-in kinds {kinds}, expected {want}")
yaml.safe_dump_all(keep, open(sys.argv[2], "w"))
PY

"$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$builtin"
echo "check-k8s: deploy/kubernetes renders and validates against Kubernetes $K8S_VERSION" >&2
