#!/usr/bin/env bash
# The one benchmark command. Builds leanpoint in release mode, then runs the
# benchmarks (scripts/bench.py) and writes bench-results/results.json and
# bench-results/summary.md (the tables of BENCHMARKS.md).
#
#   scripts/bench.sh                  everything (about 10 minutes)
#   BENCH_QUICK=1 scripts/bench.sh    shorter windows (about 4 minutes)
#   scripts/bench.sh polling scrape   only some: polling scrape checkpoint faults micro
#
# Everything it starts listens on and talks to 127.0.0.1 only, is bounded in
# time and is stopped when the script exits (normally, on error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v ss >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
    echo "==> installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "==> cargo build --release" >&2
cargo build --release --locked

# The harness stops its own children whatever way it exits (scripts/benchlib.py).
export PYTHONDONTWRITEBYTECODE=1
exec python3 scripts/bench.py "$@"
