#!/usr/bin/env bash
# The shipped dashboards and alert rules against a real Prometheus scraping a
# real leanpoint that polls the simulator with a hung node
# (tests/prometheus_e2e/). Needs Debian's prometheus on PATH
# (scripts/install-deps.sh). Bounded: the test itself fails after 170 s of
# work; the outer timeout also covers building it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --kill-after=10 600 \
    cargo test --locked --test prometheus_e2e -- --nocapture --test-threads=1
