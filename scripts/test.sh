#!/usr/bin/env bash
# The one test command: everything CI runs, in the order a failure is
# cheapest to find. Works on a fresh Debian machine (installs what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing test dependencies (promtool, prometheus, amtool, docker-compose, kubectl, nft, ip, chromium) if missing"
scripts/install-deps.sh

step "no file outside the docs refers to a shared/ directory beside the repo (it must test alone)"
if git grep -n '\.\./shared' -- ':!*.md'; then
    echo "the files above refer to the shared/ directory beside the repo" >&2
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "source layers: no import cycle between src files, no back edge between layers"
python3 scripts/check-layers.py

step "cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings
# prometheus_e2e is `test = false` (run by its own step below, not alongside
# the timing tests), so --all-targets does not lint it.
cargo clippy --locked --test prometheus_e2e -- -D warnings
cargo clippy --locked --test browser_page -- -D warnings

step "cargo test (unit, integration on the real binary and real sockets)"
# Two test threads: the fault tests time real deadlines, and the machine
# they must pass on has two cores.
cargo test --locked --all-targets -- --test-threads=2

step "alert rules: promtool check rules + unit tests"
promtool check rules alerts/*.rules.yml
promtool test rules alerts/tests/*.yml

step "compose stack on paper: docker-compose config, promtool check config, amtool check-config"
docker-compose -f docker-compose.yml config -q
promtool check config --syntax-only deploy/prometheus/prometheus.yml
amtool check-config deploy/alertmanager/alertmanager.yml

step "Kubernetes base: PrometheusRule = alerts/, kubectl kustomize, schema (kubernetes-validate)"
scripts/check-k8s.sh

step "network faults between namespaces (veth + nftables): loss, mid-body, after headers, black hole, partitions"
scripts/netns-faults.sh

step "status page in headless Chromium against the demo (screenshot: target/artifacts/status-page.png)"
# Its own step (test = false), after the timing tests: a browser is heavy
# on two cores.
cargo test --locked --test browser_page -- --test-threads=1 --nocapture

step "dashboards and rules against a real Prometheus scraping a real leanpoint"
scripts/prometheus-e2e.sh

step "the tests pass from a fresh clone with nothing beside it"
scripts/fresh-clone.sh

step "all tests passed"
